/*
  chatserver.c -- a full-duplex WebSocket chat server built on GNU
  libmicrohttpd and libmicrohttpd_ws.

  GET / serves a chat page.  The page connects back with a WebSocket
  (optionally with ?name=...); every message a client sends is broadcast,
  with the sender's name, to every connected client, and joins and leaves
  are announced.  Messages to the browser are small JSON objects:

    {"type":"welcome","name":"guest1","online":2}   (to the new client)
    {"type":"join","name":"guest1","online":2}
    {"type":"leave","name":"guest1","online":1}
    {"type":"msg","name":"guest1","text":"hello"}

  Threads: each connection has a receiving thread that decodes what its
  client sends; any thread may send to any connection, serialised by the
  connection's send lock (encoding never changes a stream's state, so this
  is safe while the owner decodes).  A housekeeping thread pings every
  client every PING_INTERVAL seconds and drops those silent for
  IDLE_TIMEOUT seconds.  A send that does not finish within SEND_TIMEOUT
  seconds drops its client, so a stalled client cannot hold up the others.

  Usage: chatserver [PORT]     (default 8080, 0 picks a free port)
  The server listens on 127.0.0.1 only and stops on SIGINT or SIGTERM.
  The environment variables CHAT_PING_INTERVAL and CHAT_IDLE_TIMEOUT
  (seconds) override the housekeeping periods, for testing.
*/

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <microhttpd.h>
#include <microhttpd_ws.h>

#define DEFAULT_PORT 8080
#define PING_INTERVAL 10
#define IDLE_TIMEOUT 30
#define SEND_TIMEOUT 2
/* A chat line is short; this also bounds what one client can make us
   allocate. */
#define MAX_MESSAGE 4096
/* In bytes of UTF-8. */
#define MAX_NAME 24

/* The chat page.  Everything that comes from the network reaches the
   document through textContent or text nodes, never as markup. */
static const char page[] =
  "<!DOCTYPE html>\n"
  "<html lang='en'>\n"
  "<head>\n"
  "<meta charset='utf-8'>\n"
  "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
  "<title>Chat</title>\n"
  "<style>\n"
  "html, body { height: 100%; margin: 0; }\n"
  "body { font-family: sans-serif; display: flex; flex-direction: column; }\n"
  "header { display: flex; gap: .8em; align-items: center; flex-wrap: wrap;\n"
  "  padding: .6em 1em; background: #234; color: #fff; }\n"
  "#state { margin-left: auto; font-size: .9em; }\n"
  "#state.on { color: #9f9; } #state.off { color: #fbb; }\n"
  "#log { flex: 1; overflow-y: auto; margin: 0; padding: .5em 1em;\n"
  "  list-style: none; }\n"
  "#log li { margin: .25em 0; white-space: pre-wrap;\n"
  "  overflow-wrap: anywhere; }\n"
  "#log .who { font-weight: bold; margin-right: .4em; }\n"
  "#log .info { color: #777; font-style: italic; }\n"
  "form { display: flex; gap: .5em; padding: .6em 1em;\n"
  "  border-top: 1px solid #ccc; }\n"
  "#text { flex: 1; }\n"
  "</style>\n"
  "</head>\n"
  "<body>\n"
  "<header>\n"
  "<strong>Chat</strong>\n"
  "<label>Name <input id='name' maxlength='24' placeholder='(guest)'\n"
  "  autofocus></label>\n"
  "<button id='join' type='button'>Join</button>\n"
  "<span id='state' class='off'>not connected</span>\n"
  "</header>\n"
  "<ul id='log'></ul>\n"
  "<form id='form'>\n"
  "<input id='text' autocomplete='off' maxlength='4000'\n"
  "  placeholder='Message' disabled>\n"
  "<button id='send' disabled>Send</button>\n"
  "</form>\n"
  "<script>\n"
  "(function () {\n"
  "  var byId = function (id) { return document.getElementById(id); };\n"
  "  var ws = null;\n"
  "  function setState(text, on) {\n"
  "    var s = byId('state');\n"
  "    s.textContent = text;\n"
  "    s.className = on ? 'on' : 'off';\n"
  "  }\n"
  "  function add(cls, who, text) {\n"
  "    var log = byId('log');\n"
  "    var end = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;\n"
  "    var li = document.createElement('li');\n"
  "    li.className = cls;\n"
  "    if (who !== null) {\n"
  "      var b = document.createElement('span');\n"
  "      b.className = 'who';\n"
  "      b.textContent = who + ':';\n"
  "      li.appendChild(b);\n"
  "    }\n"
  "    li.appendChild(document.createTextNode(text));\n"
  "    log.appendChild(li);\n"
  "    if (end) log.scrollTop = log.scrollHeight;\n"
  "  }\n"
  "  function setJoined(joined) {\n"
  "    byId('name').disabled = joined;\n"
  "    byId('join').textContent = joined ? 'Leave' : 'Join';\n"
  "    byId('text').disabled = !joined;\n"
  "    byId('send').disabled = !joined;\n"
  "    if (joined) byId('text').focus();\n"
  "  }\n"
  "  function connect() {\n"
  "    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://')\n"
  "      + location.host + '/';\n"
  "    var name = byId('name').value.trim();\n"
  "    if (name) url += '?name=' + encodeURIComponent(name);\n"
  "    setState('connecting...', false);\n"
  "    byId('join').disabled = true;\n"
  "    ws = new WebSocket(url);\n"
  "    ws.onopen = function () {\n"
  "      setState('connected', true);\n"
  "      byId('join').disabled = false;\n"
  "      setJoined(true);\n"
  "    };\n"
  "    ws.onmessage = function (e) {\n"
  "      var m;\n"
  "      try { m = JSON.parse(e.data); } catch (x) { return; }\n"
  "      var n = ' (' + m.online + ' online).';\n"
  "      if (m.type === 'msg') add('', m.name, m.text);\n"
  "      else if (m.type === 'join')\n"
  "        add('info', null, m.name + ' joined' + n);\n"
  "      else if (m.type === 'leave')\n"
  "        add('info', null, m.name + ' left' + n);\n"
  "      else if (m.type === 'welcome') {\n"
  "        byId('name').value = m.name;\n"
  "        add('info', null, 'You are ' + m.name + n);\n"
  "      }\n"
  "    };\n"
  "    ws.onclose = function (e) {\n"
  "      var why = ' (' + e.code + (e.reason ? ': ' + e.reason : '') + ')';\n"
  "      setState('disconnected' + why, false);\n"
  "      add('info', null, 'Disconnected' + why + '.');\n"
  "      byId('join').disabled = false;\n"
  "      setJoined(false);\n"
  "      ws = null;\n"
  "    };\n"
  "  }\n"
  "  byId('join').onclick = function () {\n"
  "    if (ws) ws.close(1000); else connect();\n"
  "  };\n"
  "  byId('name').onkeydown = function (e) {\n"
  "    if (e.key === 'Enter' && !ws) connect();\n"
  "  };\n"
  "  byId('form').onsubmit = function (e) {\n"
  "    e.preventDefault();\n"
  "    var t = byId('text');\n"
  "    if (ws && ws.readyState === WebSocket.OPEN && t.value) {\n"
  "      ws.send(t.value);\n"
  "      t.value = '';\n"
  "    }\n"
  "  };\n"
  "})();\n"
  "</script>\n"
  "</body>\n"
  "</html>\n";


/**
 * One chat participant.
 *
 * Lifetime: @e refs counts the threads that may use the connection: its
 * receiving thread holds one from the upgrade until it ends, and a
 * thread that sends to a listed connection takes one (under list_lock)
 * for as long as it sends.  The last one to let go hands the socket back
 * to libmicrohttpd and frees the connection, so no thread ever sends on a
 * socket number that libmicrohttpd has closed and possibly reused.
 */
struct ChatConn
{
  /* Under list_lock: */
  struct ChatConn *prev;
  struct ChatConn *next;
  unsigned int refs;
  int listed;
  struct timespec last_heard;

  /* Under send_lock: whether frames may still be sent.  Cleared once a
     close frame went out or the socket failed. */
  pthread_mutex_t send_lock;
  int alive;

  /* Fixed after the upgrade: */
  MHD_socket sock;
  struct MHD_UpgradeResponseHandle *urh;
  struct MHD_WebSocketStream *ws;
  char name[MAX_NAME + 1];
  char *extra;
  size_t extra_len;
  /* permessage-deflate agreed: frames are encoded per connection. */
  int deflate;
};

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
/* Signalled when a connection is freed and when stopping is set. */
static pthread_cond_t list_cond;
static struct ChatConn *list_head;
static unsigned int list_count;
/* Connections not freed yet, listed or not. */
static unsigned int conns_alive;
static unsigned int guest_counter;
static int stopping;

static int ping_interval = PING_INTERVAL;
static int idle_timeout = IDLE_TIMEOUT;
/* Accept permessage-deflate when offered (--no-deflate: never). */
static int use_deflate = 1;
/* Encodes the uncompressed frames that a broadcast shares among
   connections; without compression encoding leaves a stream as it was,
   so any thread may use it. */
static struct MHD_WebSocketStream *plain_ws;


/**
 * The answer to the client's permessage-deflate offer, if any, in
 * @a answer (empty when compression is not used).  Called in the access
 * handler and again in the upgrade handler: same request, same answer.
 */
static int
negotiate_deflate (struct MHD_Connection *connection,
                   char answer[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE])
{
  answer[0] = '\0';
  return use_deflate
         && (MHD_WEBSOCKET_STATUS_OK
             == MHD_websocket_deflate_negotiate (
               MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                            "Sec-WebSocket-Extensions"),
               0, 0, 0, answer, MHD_WEBSOCKET_DEFLATE_HEADER_SIZE));
}


static double
seconds_between (const struct timespec *a, const struct timespec *b)
{
  return (double) (b->tv_sec - a->tv_sec)
         + (double) (b->tv_nsec - a->tv_nsec) / 1e9;
}


/* ------------------------------------------------------------------ */
/* JSON building                                                      */
/* ------------------------------------------------------------------ */

/**
 * A growing string; after any allocation failure it stays failed and
 * the caller sees data == NULL.
 */
struct Buf
{
  char *data;
  size_t len;
  size_t cap;
};


static void
buf_add (struct Buf *b, const char *s, size_t n)
{
  if ((NULL == b->data) && (0 != b->cap))
    return; /* failed earlier */
  if (b->len + n + 1 > b->cap)
  {
    size_t cap = (0 == b->cap) ? 128 : b->cap;
    char *bigger;

    while (b->len + n + 1 > cap)
      cap *= 2;
    bigger = realloc (b->data, cap);
    if (NULL == bigger)
    {
      free (b->data);
      b->data = NULL;
      b->cap = 1;
      return;
    }
    b->data = bigger;
    b->cap = cap;
  }
  memcpy (b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}


static void
buf_add_str (struct Buf *b, const char *s)
{
  buf_add (b, s, strlen (s));
}


/**
 * Appends @a s as a quoted JSON string.  The input is valid UTF-8 (the
 * decoder checked it), so only the quote, the backslash and control
 * characters need escapes; everything else is copied as it is.
 */
static void
buf_add_json (struct Buf *b, const char *s, size_t n)
{
  size_t i;
  size_t run = 0;

  buf_add (b, "\"", 1);
  for (i = 0; i < n; i++)
  {
    unsigned char c = (unsigned char) s[i];
    char esc[8];

    if ((c >= 0x20) && (c != '"') && (c != '\\') && (c != 0x7f))
      continue;
    buf_add (b, s + run, i - run);
    run = i + 1;
    switch (c)
    {
    case '"':
      buf_add (b, "\\\"", 2);
      break;
    case '\\':
      buf_add (b, "\\\\", 2);
      break;
    case '\n':
      buf_add (b, "\\n", 2);
      break;
    case '\r':
      buf_add (b, "\\r", 2);
      break;
    case '\t':
      buf_add (b, "\\t", 2);
      break;
    default:
      snprintf (esc, sizeof (esc), "\\u%04x", (unsigned int) c);
      buf_add_str (b, esc);
      break;
    }
  }
  buf_add (b, s + run, n - run);
  buf_add (b, "\"", 1);
}


/**
 * Builds a join, leave or welcome event.
 */
static void
make_presence (struct Buf *b, const char *type, const char *name,
               unsigned int online)
{
  char num[32];

  buf_add_str (b, "{\"type\":\"");
  buf_add_str (b, type);
  buf_add_str (b, "\",\"name\":");
  buf_add_json (b, name, strlen (name));
  snprintf (num, sizeof (num), ",\"online\":%u}", online);
  buf_add_str (b, num);
}


/* ------------------------------------------------------------------ */
/* Connections                                                        */
/* ------------------------------------------------------------------ */

/**
 * Sends all of @a len bytes within SEND_TIMEOUT seconds.  The socket has
 * SO_SNDTIMEO set, so one send() cannot block longer; the deadline also
 * stops a client that reads a trickle at a time.
 *
 * @return 0 on success, -1 on failure or timeout
 */
static int
send_all (MHD_socket sock, const char *buf, size_t len)
{
  struct timespec start;
  struct timespec now;

  clock_gettime (CLOCK_MONOTONIC, &start);
  while (len > 0)
  {
    ssize_t n = send (sock, buf, len, MSG_NOSIGNAL);

    if (n < 0)
    {
      if (EINTR != errno)
        return -1;
    }
    else
    {
      buf += n;
      len -= (size_t) n;
    }
    clock_gettime (CLOCK_MONOTONIC, &now);
    if ((len > 0) && (seconds_between (&start, &now) > SEND_TIMEOUT))
      return -1;
  }
  return 0;
}


/**
 * Ends a connection at once: both directions are shut down, which makes
 * its receiving thread leave recv() and any sender leave send().  The
 * socket itself stays open until the last reference is gone.
 */
static void
conn_kill (struct ChatConn *c)
{
  (void) shutdown (c->sock, SHUT_RDWR);
  pthread_mutex_lock (&c->send_lock);
  c->alive = 0;
  pthread_mutex_unlock (&c->send_lock);
}


/**
 * Sends one encoded frame to @a c, unless a close frame already went out.
 * A client whose send fails or times out is dropped.
 *
 * @return 0 on success, -1 otherwise
 */
static int
conn_send (struct ChatConn *c, const char *frame, size_t frame_len)
{
  int ret = -1;
  int failed = 0;

  pthread_mutex_lock (&c->send_lock);
  if (c->alive)
  {
    if (0 == send_all (c->sock, frame, frame_len))
      ret = 0;
    else
    {
      c->alive = 0;
      failed = 1;
    }
  }
  pthread_mutex_unlock (&c->send_lock);
  if (failed)
  {
    fprintf (stderr, "Dropping %s: send failed or timed out\n", c->name);
    conn_kill (c);
  }
  return ret;
}


/**
 * Sends a close frame as the last frame on @a c and half-closes the
 * socket; the receiving thread keeps reading until the client answers
 * (or goes away).
 */
static void
conn_send_close_frame (struct ChatConn *c, const char *frame, size_t len)
{
  int failed = 0;

  pthread_mutex_lock (&c->send_lock);
  if (c->alive)
  {
    c->alive = 0;
    if (0 == send_all (c->sock, frame, len))
      (void) shutdown (c->sock, SHUT_WR);
    else
      failed = 1;
  }
  pthread_mutex_unlock (&c->send_lock);
  if (failed)
    conn_kill (c);
}


static void
conn_close (struct ChatConn *c, unsigned short code, const char *reason)
{
  char *frame;
  size_t frame_len;

  if (MHD_WEBSOCKET_STATUS_OK
      == MHD_websocket_encode_close (c->ws, code, reason,
                                     NULL == reason ? 0 : strlen (reason),
                                     &frame, &frame_len))
  {
    conn_send_close_frame (c, frame, frame_len);
    MHD_websocket_free (c->ws, frame);
  }
  else
    conn_kill (c);
}


/**
 * Encodes @a text as a text frame and sends it to @a c.
 */
static void
conn_send_text (struct ChatConn *c, const char *text, size_t len)
{
  char *frame;
  size_t frame_len;
  int failed = 0;

  /* With compression each frame continues the connection's compression
     context: frames are encoded and sent in one order, under one lock. */
  pthread_mutex_lock (&c->send_lock);
  if (c->alive
      && (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_text (c->ws, text, len,
                                        MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                        &frame, &frame_len, NULL)))
  {
    if (0 != send_all (c->sock, frame, frame_len))
    {
      c->alive = 0;
      failed = 1;
    }
    MHD_websocket_free (c->ws, frame);
  }
  pthread_mutex_unlock (&c->send_lock);
  if (failed)
  {
    fprintf (stderr, "Dropping %s: send failed or timed out\n", c->name);
    conn_kill (c);
  }
}


/**
 * Frees @a c; called by whoever dropped the last reference.
 */
static void
conn_destroy (struct ChatConn *c)
{
  /* From here on the socket belongs to libmicrohttpd again. */
  MHD_upgrade_action (c->urh, MHD_UPGRADE_ACTION_CLOSE);
  if (NULL != c->ws)
    MHD_websocket_stream_free (c->ws);
  pthread_mutex_destroy (&c->send_lock);
  free (c->extra);
  free (c);
  pthread_mutex_lock (&list_lock);
  conns_alive--;
  pthread_cond_broadcast (&list_cond);
  pthread_mutex_unlock (&list_lock);
}


static void
conn_unref (struct ChatConn *c)
{
  int last;

  pthread_mutex_lock (&list_lock);
  last = (0 == --c->refs);
  pthread_mutex_unlock (&list_lock);
  if (last)
    conn_destroy (c);
}


/**
 * Takes @a c off the list.
 *
 * @return the number of connections left, or -1 if @a c was not listed
 */
static int
conn_unlist (struct ChatConn *c)
{
  int left = -1;

  pthread_mutex_lock (&list_lock);
  if (c->listed)
  {
    if (NULL != c->prev)
      c->prev->next = c->next;
    else
      list_head = c->next;
    if (NULL != c->next)
      c->next->prev = c->prev;
    c->listed = 0;
    list_count--;
    left = (int) list_count;
  }
  pthread_mutex_unlock (&list_lock);
  return left;
}


/**
 * Returns every listed connection, each with a reference taken so that
 * it stays valid after the lock is released.
 *
 * @param[out] count how many
 * @return an array to pass to release(), or NULL (count 0) when the list
 *         is empty or memory is short
 */
static struct ChatConn **
snapshot (size_t *count)
{
  struct ChatConn **all = NULL;
  struct ChatConn *c;
  size_t n = 0;

  pthread_mutex_lock (&list_lock);
  if (list_count > 0)
    all = malloc (list_count * sizeof (*all));
  if (NULL != all)
    for (c = list_head; NULL != c; c = c->next)
    {
      c->refs++;
      all[n++] = c;
    }
  pthread_mutex_unlock (&list_lock);
  *count = n;
  return all;
}


static void
release (struct ChatConn **all, size_t count)
{
  size_t i;

  for (i = 0; i < count; i++)
    conn_unref (all[i]);
  free (all);
}


/**
 * Sends @a json to every listed connection but @a except (may be NULL).
 * The frame is encoded once: server frames are unmasked, so the same
 * bytes suit every client, except those with compression, whose frames
 * depend on what each was sent before.
 */
static void
broadcast (struct ChatConn *from, const struct Buf *json,
           const struct ChatConn *except)
{
  char *frame;
  size_t frame_len;
  struct ChatConn **all;
  size_t count;
  size_t i;

  if (NULL == json->data)
    return;
  (void) from;
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_encode_text (plain_ws, json->data, json->len,
                                    MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame,
                                    &frame_len, NULL))
    return;
  all = snapshot (&count);
  for (i = 0; i < count; i++)
    if ((all[i] != except) && all[i]->deflate)
      conn_send_text (all[i], json->data, json->len);
    else if (all[i] != except)
      (void) conn_send (all[i], frame, frame_len);
  release (all, count);
  MHD_websocket_free (plain_ws, frame);
}


/* ------------------------------------------------------------------ */
/* Receiving                                                          */
/* ------------------------------------------------------------------ */

/**
 * Answers a close frame from the client.  A code the client may send is
 * echoed, as RFC 6455 5.5.1 suggests; an empty close frame is answered
 * with 1000; codes from 5000 up pass the decoder unjudged, but RFC 6455
 * defines none of them, so they get 1002.
 */
static void
answer_close (struct ChatConn *c, const char *payload, size_t payload_len)
{
  unsigned short code;
  unsigned short answer = MHD_WEBSOCKET_CLOSEREASON_REGULAR;

  if (MHD_WEBSOCKET_STATUS_OK
      == MHD_websocket_split_close_reason (payload, payload_len, &code, NULL,
                                           NULL))
  {
    if (code >= 5000)
      answer = MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR;
    else if (MHD_WEBSOCKET_CLOSEREASON_NO_REASON != code)
      answer = code;
  }
  conn_close (c, answer, NULL);
}


/**
 * Decodes received bytes and acts on each complete frame.
 *
 * @return 0 to keep reading, 1 when the connection is over
 */
static int
process_input (struct ChatConn *c, const char *data, size_t len)
{
  size_t offset = 0;

  /* One decode call returns at most one frame: call again with the
     unconsumed rest until the decoder has taken every byte. */
  while (offset < len)
  {
    size_t used = 0;
    char *payload = NULL;
    size_t payload_len = 0;
    char *frame;
    size_t frame_len;
    enum MHD_WEBSOCKET_STATUS status;
    int done = 0;
    struct Buf json = { NULL, 0, 0 };

    status = MHD_websocket_decode (c->ws, data + offset, len - offset, &used,
                                   &payload, &payload_len);
    offset += used;
    switch (status)
    {
    case MHD_WEBSOCKET_STATUS_OK:
      /* All consumed; the next frame is not complete yet. */
      if (offset < len)
      {
        fprintf (stderr, "Decoder stopped before the end of its input\n");
        conn_close (c, MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION, NULL);
        done = 1;
      }
      break;
    case MHD_WEBSOCKET_STATUS_TEXT_FRAME:
      if (0 == payload_len)
        break;
      buf_add_str (&json, "{\"type\":\"msg\",\"name\":");
      buf_add_json (&json, c->name, strlen (c->name));
      buf_add_str (&json, ",\"text\":");
      buf_add_json (&json, payload, payload_len);
      buf_add_str (&json, "}");
      broadcast (c, &json, NULL);
      free (json.data);
      break;
    case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
      conn_close (c, MHD_WEBSOCKET_CLOSEREASON_UNSUPPORTED_DATATYPE,
                  "only text messages");
      done = 1;
      break;
    case MHD_WEBSOCKET_STATUS_PING_FRAME:
      if (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_pong (c->ws, payload, payload_len, &frame,
                                        &frame_len))
      {
        (void) conn_send (c, frame, frame_len);
        MHD_websocket_free (c->ws, frame);
      }
      break;
    case MHD_WEBSOCKET_STATUS_PONG_FRAME:
      /* Answer to our keep-alive ping; hearing it is all that counts, and
         the receive loop noted that already. */
      break;
    case MHD_WEBSOCKET_STATUS_CLOSE_FRAME:
      /* Either the client starts the closing handshake, or it answers
         ours (then conn_close() sends nothing). */
      answer_close (c, payload, payload_len);
      done = 1;
      break;
    case MHD_WEBSOCKET_STATUS_MEMORY_ERROR:
      conn_close (c, MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION, NULL);
      done = 1;
      break;
    default:
      /* Protocol, UTF-8 and size errors: the stream is now invalid and,
         thanks to GENERATE_CLOSE_FRAMES_ON_ERROR, payload holds the close
         frame that tells the client why. */
      if (NULL != payload)
        conn_send_close_frame (c, payload, payload_len);
      else
        conn_kill (c);
      done = 1;
      break;
    }
    if (NULL != payload)
      MHD_websocket_free (c->ws, payload);
    if (done)
      return 1;
    if (MHD_WEBSOCKET_STATUS_OK == status)
      break;
  }
  return 0;
}


/**
 * The receiving thread of one connection.
 */
static void *
conn_main (void *cls)
{
  struct ChatConn *c = cls;
  struct Buf json = { NULL, 0, 0 };
  char buf[4096];
  int done = 0;
  int left;
  unsigned int online;

  pthread_mutex_lock (&list_lock);
  online = list_count;
  pthread_mutex_unlock (&list_lock);
  make_presence (&json, "welcome", c->name, online);
  if (NULL != json.data)
    conn_send_text (c, json.data, json.len);
  free (json.data);
  json.data = NULL;
  json.len = json.cap = 0;
  /* The newcomer learns of its own arrival from the welcome. */
  make_presence (&json, "join", c->name, online);
  broadcast (c, &json, c);
  free (json.data);

  if (c->extra_len > 0)
    done = process_input (c, c->extra, c->extra_len);
  while (! done)
  {
    ssize_t got = recv (c->sock, buf, sizeof (buf), 0);

    if ((got < 0) && (EINTR == errno))
      continue;
    if (got <= 0)
      break;
    pthread_mutex_lock (&list_lock);
    clock_gettime (CLOCK_MONOTONIC, &c->last_heard);
    pthread_mutex_unlock (&list_lock);
    done = process_input (c, buf, (size_t) got);
  }
  /* Whatever ended the loop, nothing more is sent on this connection. */
  conn_kill (c);

  left = conn_unlist (c);
  if (left >= 0)
  {
    int quiet;

    pthread_mutex_lock (&list_lock);
    quiet = stopping;
    pthread_mutex_unlock (&list_lock);
    if (! quiet)
    {
      json.data = NULL;
      json.len = json.cap = 0;
      make_presence (&json, "leave", c->name, (unsigned int) left);
      broadcast (c, &json, NULL);
      free (json.data);
    }
  }
  conn_unref (c);
  return NULL;
}


/* ------------------------------------------------------------------ */
/* Upgrade                                                            */
/* ------------------------------------------------------------------ */

/**
 * Picks the display name: the requested one, cleaned of control
 * characters and cut to MAX_NAME bytes on a character boundary, or
 * "guestN" when none is usable.
 */
static void
choose_name (struct ChatConn *c, const char *wanted)
{
  size_t n = 0;
  char *frame;
  size_t frame_len;
  unsigned int guest;

  if (NULL != wanted)
  {
    const char *p;

    for (p = wanted; '\0' != *p; p++)
    {
      unsigned char ch = (unsigned char) *p;

      if ((ch < 0x20) || (0x7f == ch))
        continue;
      if ((' ' == ch) && (0 == n))
        continue;
      if (n == MAX_NAME)
      {
        /* Do not keep the start of a character whose rest is cut off. */
        if (0x80 == (ch & 0xc0))
          while ((n > 0) && (0x80 == ((unsigned char) c->name[n - 1] & 0xc0)))
            n--;
        if ((n > 0) && ((unsigned char) c->name[n - 1] >= 0xc0))
          n--;
        break;
      }
      c->name[n++] = (char) ch;
    }
    while ((n > 0) && (' ' == c->name[n - 1]))
      n--;
  }
  c->name[n] = '\0';
  /* The name travels in text frames, so it must be valid UTF-8; the
     encoder is the validator at hand. */
  if ((n > 0)
      && (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_text (c->ws, c->name, n,
                                        MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                        &frame, &frame_len, NULL)))
  {
    MHD_websocket_free (c->ws, frame);
    return;
  }
  pthread_mutex_lock (&list_lock);
  guest = ++guest_counter;
  pthread_mutex_unlock (&list_lock);
  snprintf (c->name, sizeof (c->name), "guest%u", guest);
}


/**
 * Called by libmicrohttpd once the 101 response is sent: from here on the
 * socket speaks WebSocket, handled by a detached thread of our own.
 */
static void
on_upgrade (void *cls, struct MHD_Connection *connection, void *req_cls,
            const char *extra_in, size_t extra_in_size, MHD_socket sock,
            struct MHD_UpgradeResponseHandle *urh)
{
  struct ChatConn *c;
  struct timeval tv;
  pthread_attr_t attr;
  pthread_t thread;
  int flags;
  int ok = 0;

  (void) cls;
  (void) req_cls;
  c = calloc (1, sizeof (*c));
  if (NULL == c)
  {
    MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
    return;
  }
  c->sock = sock;
  c->urh = urh;
  c->alive = 1;
  c->refs = 1; /* the receiving thread's */
  if ((0 != pthread_mutex_init (&c->send_lock, NULL)))
  {
    free (c);
    MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
    return;
  }
  /* From here on conn_destroy() cleans up, and it expects to be
     counted. */
  pthread_mutex_lock (&list_lock);
  conns_alive++;
  pthread_mutex_unlock (&list_lock);

  if (extra_in_size > 0)
  {
    c->extra = malloc (extra_in_size);
    if (NULL == c->extra)
    {
      conn_destroy (c);
      return;
    }
    memcpy (c->extra, extra_in, extra_in_size);
    c->extra_len = extra_in_size;
  }
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_stream_init (
        &c->ws,
        MHD_WEBSOCKET_FLAG_SERVER | MHD_WEBSOCKET_FLAG_NO_FRAGMENTS
          | MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR,
        MAX_MESSAGE))
  {
    conn_destroy (c);
    return;
  }
  /* The request is still readable here: ?name= comes from the URL. */
  choose_name (
    c, MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "name"));
  /* After choose_name, whose test encoding must not enter a compression
     context. */
  {
    char deflate[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
    if (negotiate_deflate (connection, deflate))
    {
      if (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_stream_enable_deflate (c->ws, deflate, -1, 0, 0))
      {
        conn_destroy (c);
        return;
      }
      c->deflate = 1;
    }
  }

  /* Blocking I/O in our threads; sends give up after SEND_TIMEOUT. */
  flags = fcntl (sock, F_GETFL);
  if (flags >= 0)
    (void) fcntl (sock, F_SETFL, flags & ~O_NONBLOCK);
  tv.tv_sec = SEND_TIMEOUT;
  tv.tv_usec = 0;
  (void) setsockopt (sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof (tv));

  pthread_mutex_lock (&list_lock);
  if (! stopping)
  {
    clock_gettime (CLOCK_MONOTONIC, &c->last_heard);
    c->next = list_head;
    if (NULL != list_head)
      list_head->prev = c;
    list_head = c;
    c->listed = 1;
    list_count++;
    ok = 1;
  }
  pthread_mutex_unlock (&list_lock);
  if (! ok)
  {
    conn_destroy (c);
    return;
  }

  ok = 0;
  if (0 == pthread_attr_init (&attr))
  {
    if ((0 == pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED))
        && (0 == pthread_create (&thread, &attr, &conn_main, c)))
      ok = 1;
    pthread_attr_destroy (&attr);
  }
  if (! ok)
  {
    conn_unlist (c);
    conn_unref (c);
  }
}


/* ------------------------------------------------------------------ */
/* Housekeeping                                                       */
/* ------------------------------------------------------------------ */

/**
 * Every ping_interval seconds: drops connections not heard from for
 * idle_timeout seconds and pings the others, whose pongs count as being
 * heard from.
 */
static void *
housekeeping_main (void *cls)
{
  (void) cls;
  for (;;)
  {
    struct timespec deadline;
    struct timespec now;
    struct ChatConn **all;
    size_t count;
    size_t i;
    int quit;

    clock_gettime (CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ping_interval;
    pthread_mutex_lock (&list_lock);
    while (! stopping)
      if (ETIMEDOUT
          == pthread_cond_timedwait (&list_cond, &list_lock, &deadline))
        break;
    quit = stopping;
    pthread_mutex_unlock (&list_lock);
    if (quit)
      break;

    all = snapshot (&count);
    clock_gettime (CLOCK_MONOTONIC, &now);
    for (i = 0; i < count; i++)
    {
      struct ChatConn *c = all[i];
      double silent;
      char *frame;
      size_t frame_len;

      pthread_mutex_lock (&list_lock);
      silent = seconds_between (&c->last_heard, &now);
      pthread_mutex_unlock (&list_lock);
      if (silent >= idle_timeout)
      {
        fprintf (stderr, "Dropping %s: silent for %.0f seconds\n", c->name,
                 silent);
        conn_kill (c);
        continue;
      }
      if (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_ping (c->ws, "ka", 2, &frame, &frame_len))
      {
        (void) conn_send (c, frame, frame_len);
        MHD_websocket_free (c->ws, frame);
      }
    }
    release (all, count);
  }
  return NULL;
}


/* ------------------------------------------------------------------ */
/* HTTP                                                               */
/* ------------------------------------------------------------------ */

/**
 * Queues a short plain-text answer, optionally with one extra header.
 */
static enum MHD_Result
send_text (struct MHD_Connection *connection, unsigned int status,
           const char *text, const char *header, const char *value)
{
  struct MHD_Response *response;
  enum MHD_Result ret;

  response = MHD_create_response_from_buffer (strlen (text), (void *) text,
                                              MHD_RESPMEM_PERSISTENT);
  if (NULL == response)
    return MHD_NO;
  MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                           "text/plain; charset=utf-8");
  if (NULL != header)
    MHD_add_response_header (response, header, value);
  ret = MHD_queue_response (connection, status, response);
  MHD_destroy_response (response);
  return ret;
}


/**
 * Validates a WebSocket opening handshake (RFC 6455 4.2.1) and answers
 * it with 101, or with 400/426 and the reason.
 */
static enum MHD_Result
handle_upgrade (struct MHD_Connection *connection, const char *method,
                const char *version)
{
  char accept[29];
  char deflate[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
  struct MHD_Response *response;
  enum MHD_Result ret;

  if (0 != strcmp (method, MHD_HTTP_METHOD_GET))
    return send_text (connection, MHD_HTTP_BAD_REQUEST,
                      "A WebSocket handshake must use GET.\n", NULL, NULL);
  if (MHD_WEBSOCKET_STATUS_OK != MHD_websocket_check_http_version (version))
    return send_text (connection, MHD_HTTP_BAD_REQUEST,
                      "A WebSocket handshake needs HTTP/1.1 or later.\n", NULL,
                      NULL);
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_check_connection_header (MHD_lookup_connection_value (
        connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION)))
    return send_text (connection, MHD_HTTP_BAD_REQUEST,
                      "The Connection header must contain 'Upgrade'.\n", NULL,
                      NULL);
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_check_upgrade_header (MHD_lookup_connection_value (
        connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE)))
    return send_text (connection, MHD_HTTP_BAD_REQUEST,
                      "The Upgrade header must contain 'websocket'.\n", NULL,
                      NULL);
  /* RFC 6455 4.2.2: an unsupported version is answered with 426 and the
     versions we do speak. */
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_check_version_header (MHD_lookup_connection_value (
        connection, MHD_HEADER_KIND, "Sec-WebSocket-Version")))
    return send_text (connection, MHD_HTTP_UPGRADE_REQUIRED,
                      "Only WebSocket version 13 is supported.\n",
                      "Sec-WebSocket-Version", "13");
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_create_accept_header (
        MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                     "Sec-WebSocket-Key"),
        accept))
    return send_text (connection, MHD_HTTP_BAD_REQUEST,
                      "Sec-WebSocket-Key is missing or malformed.\n", NULL,
                      NULL);

  response = MHD_create_response_for_upgrade (&on_upgrade, NULL);
  if (NULL == response)
    return MHD_NO;
  /* libmicrohttpd adds "Connection: Upgrade" itself. */
  if ((MHD_YES
       != MHD_add_response_header (response, MHD_HTTP_HEADER_UPGRADE,
                                   "websocket"))
      || (MHD_YES
          != MHD_add_response_header (response, "Sec-WebSocket-Accept", accept))
      || (negotiate_deflate (connection, deflate)
          && (MHD_YES
              != MHD_add_response_header (response, "Sec-WebSocket-Extensions",
                                          deflate))))
  {
    MHD_destroy_response (response);
    return MHD_NO;
  }
  ret = MHD_queue_response (connection, MHD_HTTP_SWITCHING_PROTOCOLS, response);
  MHD_destroy_response (response);
  return ret;
}


static enum MHD_Result
on_request (void *cls, struct MHD_Connection *connection, const char *url,
            const char *method, const char *version, const char *upload_data,
            size_t *upload_data_size, void **req_cls)
{
  struct MHD_Response *response;
  enum MHD_Result ret;

  (void) cls;
  (void) upload_data;
  (void) upload_data_size;
  (void) req_cls;
  if (0 != strcmp (url, "/"))
    return send_text (connection, MHD_HTTP_NOT_FOUND, "Not found.\n", NULL,
                      NULL);
  /* Any of these headers shows the client means to upgrade; a request
     that has some but not all of them gets told what is wrong instead of
     a web page it cannot use. */
  if ((NULL
       != MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_UPGRADE))
      || (NULL
          != MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                          "Sec-WebSocket-Key"))
      || (NULL
          != MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                          "Sec-WebSocket-Version")))
    return handle_upgrade (connection, method, version);

  if ((0 != strcmp (method, MHD_HTTP_METHOD_GET))
      && (0 != strcmp (method, MHD_HTTP_METHOD_HEAD)))
    return send_text (connection, MHD_HTTP_METHOD_NOT_ALLOWED,
                      "Only GET is supported.\n", MHD_HTTP_HEADER_ALLOW,
                      "GET, HEAD");
  response = MHD_create_response_from_buffer (sizeof (page) - 1, (void *) page,
                                              MHD_RESPMEM_PERSISTENT);
  if (NULL == response)
    return MHD_NO;
  MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                           "text/html; charset=utf-8");
  ret = MHD_queue_response (connection, MHD_HTTP_OK, response);
  MHD_destroy_response (response);
  return ret;
}


/* ------------------------------------------------------------------ */
/* Main                                                               */
/* ------------------------------------------------------------------ */

/**
 * Waits until every connection is freed or @a seconds have passed.
 *
 * @return the number of connections still not freed
 */
static unsigned int
wait_for_conns (int seconds)
{
  struct timespec deadline;
  unsigned int left;

  clock_gettime (CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += seconds;
  pthread_mutex_lock (&list_lock);
  while (conns_alive > 0)
    if (ETIMEDOUT == pthread_cond_timedwait (&list_cond, &list_lock, &deadline))
      break;
  left = conns_alive;
  pthread_mutex_unlock (&list_lock);
  return left;
}


/**
 * Reads a positive number of seconds from the environment.
 */
static int
env_seconds (const char *name, int fallback)
{
  const char *s = getenv (name);
  char *end;
  long v;

  if ((NULL == s) || ('\0' == *s))
    return fallback;
  errno = 0;
  v = strtol (s, &end, 10);
  if (('\0' != *end) || (0 != errno) || (v < 1) || (v > 86400))
  {
    fprintf (stderr, "Ignoring %s=%s: not a number of seconds\n", name, s);
    return fallback;
  }
  return (int) v;
}


static void
usage (FILE *out, const char *argv0)
{
  fprintf (out,
           "usage: %s [--no-deflate] [PORT]\n"
           "Serves a WebSocket chat on http://127.0.0.1:PORT/ "
           "(default port %d, 0 for any free port).\n"
           "Environment: CHAT_PING_INTERVAL (default %d) and "
           "CHAT_IDLE_TIMEOUT (default %d), in seconds.\n",
           argv0, DEFAULT_PORT, PING_INTERVAL, IDLE_TIMEOUT);
}


int
main (int argc, char **argv)
{
  unsigned long port = DEFAULT_PORT;
  struct sockaddr_in addr;
  struct MHD_Daemon *daemon;
  const union MHD_DaemonInfo *info;
  pthread_condattr_t cattr;
  pthread_t housekeeper;
  struct ChatConn **all;
  size_t count;
  size_t i;
  sigset_t sigs;
  int sig;

  if ((argc > 1) && (0 == strcmp (argv[1], "--no-deflate")))
  {
    use_deflate = 0;
    argv[1] = argv[0];
    argc--;
    argv++;
  }
  if (argc > 2)
  {
    usage (stderr, argv[0]);
    return EXIT_FAILURE;
  }
  if (2 == argc)
  {
    char *end;

    if ((0 == strcmp (argv[1], "-h")) || (0 == strcmp (argv[1], "--help")))
    {
      usage (stdout, argv[0]);
      return EXIT_SUCCESS;
    }
    errno = 0;
    port = strtoul (argv[1], &end, 10);
    if ((argv[1][0] < '0') || (argv[1][0] > '9') || ('\0' != *end)
        || (0 != errno) || (port > 65535))
    {
      usage (stderr, argv[0]);
      return EXIT_FAILURE;
    }
  }
  ping_interval = env_seconds ("CHAT_PING_INTERVAL", PING_INTERVAL);
  idle_timeout = env_seconds ("CHAT_IDLE_TIMEOUT", IDLE_TIMEOUT);

  /* Timed waits run on a monotonic clock, immune to clock changes. */
  pthread_condattr_init (&cattr);
  pthread_condattr_setclock (&cattr, CLOCK_MONOTONIC);
  pthread_cond_init (&list_cond, &cattr);
  pthread_condattr_destroy (&cattr);

  /* Block the stop signals before any thread exists, so that every thread
     inherits the mask and main() alone receives them in sigwait(). */
  sigemptyset (&sigs);
  sigaddset (&sigs, SIGINT);
  sigaddset (&sigs, SIGTERM);
  pthread_sigmask (SIG_BLOCK, &sigs, NULL);
  signal (SIGPIPE, SIG_IGN);

  if (0 != pthread_create (&housekeeper, NULL, &housekeeping_main, NULL))
  {
    fprintf (stderr, "Could not start the housekeeping thread\n");
    return EXIT_FAILURE;
  }

  memset (&addr, 0, sizeof (addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons ((uint16_t) port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_stream_init (&plain_ws, MHD_WEBSOCKET_FLAG_SERVER, 0))
    return EXIT_FAILURE;
  daemon = MHD_start_daemon (
    MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG,
    (uint16_t) port, NULL, NULL, &on_request, NULL, MHD_OPTION_SOCK_ADDR,
    (struct sockaddr *) &addr, MHD_OPTION_END);
  if (NULL == daemon)
  {
    fprintf (stderr, "Could not start the server on 127.0.0.1:%lu\n", port);
    pthread_mutex_lock (&list_lock);
    stopping = 1;
    pthread_cond_broadcast (&list_cond);
    pthread_mutex_unlock (&list_lock);
    pthread_join (housekeeper, NULL);
    return EXIT_FAILURE;
  }
  info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
  if ((NULL != info) && (0 != info->port))
    port = info->port;
  printf ("Serving on http://127.0.0.1:%lu/\n", port);
  fflush (stdout);

  while (0 != sigwait (&sigs, &sig))
    ;

  pthread_mutex_lock (&list_lock);
  stopping = 1;
  pthread_cond_broadcast (&list_cond);
  pthread_mutex_unlock (&list_lock);
  pthread_join (housekeeper, NULL);

  /* Close every WebSocket politely first: MHD_stop_daemon() would
     otherwise close their sockets under the feet of our threads. */
  all = snapshot (&count);
  for (i = 0; i < count; i++)
    conn_close (all[i], MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY, "server stopped");
  release (all, count);
  if (0 != wait_for_conns (3))
  {
    /* Clients that did not answer the close frame are cut off. */
    all = snapshot (&count);
    for (i = 0; i < count; i++)
      conn_kill (all[i]);
    release (all, count);
    if (0 != wait_for_conns (2))
      fprintf (stderr, "Some WebSocket connections did not end in time\n");
  }
  MHD_stop_daemon (daemon);
  MHD_websocket_stream_free (plain_ws);
  return EXIT_SUCCESS;
}
