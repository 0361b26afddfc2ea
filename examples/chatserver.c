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

  Threads: the WebSockets are served by the library's loop layer
  (MHD_websocket_server_*), one loop thread per core.  A broadcast
  encodes its message once (MHD_websocket_broadcast_create(), plain and,
  for members that compress, compressed on its own) and queues that one
  reference-counted frame to every member, on every loop.  Clients are pinged
  after PING_INTERVAL seconds of silence and closed (1001) after
  IDLE_TIMEOUT; a client whose queue passes HARD_BOUND bytes because it
  does not read is closed with 1008, so it cannot hold up the others or
  make the server grow.

  With --redis HOST:PORT the server is one of several processes sharing
  one chat through Redis (chatbus.c, run in the first loop): messages go
  out by PUBLISH and come back through the subscription, the online list
  is Redis's, and each message the page sends is answered with its fate,

    {"type":"sent","n":3}  or  {"type":"error","n":3,"text":"..."}

  where n counts the page's messages on this connection from 1.  The
  welcome then carries "acks":true, the server's name, the member's id
  ("sid", which its own join event repeats) and the first names online;
  {"type":"roster",...} replaces the online list and
  {"type":"status","cluster":false} says that the link to the other
  servers is down (true: it is back).

  Usage: chatserver [-t THREADS] [--cert FILE --key FILE] [--no-deflate]
                    [--no-presence] [--redis HOST:PORT] [PORT]
  (default port 8080, 0 picks a free port; with --cert and --key it
  serves https:// and wss://).  The server listens on 127.0.0.1 (the
  environment variable LISTEN_ADDRESS names another IPv4 address, for a
  load balancer on another machine) and stops on SIGINT or SIGTERM.
  CHAT_PING_INTERVAL and CHAT_IDLE_TIMEOUT (seconds) in the environment
  override the housekeeping periods, for testing.  The plumbing the
  example servers share (options, daemon, TLS files, signals) is in
  common/daemon.c.
*/

#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>
#include <microhttpd_ws.h>

#include "common/daemon.h"
#ifdef CHAT_WITH_REDIS
#include "chatbus.h"
#endif

#define DEFAULT_PORT 8080
#define PING_INTERVAL 10
#define IDLE_TIMEOUT 30
/* After our close frame, how long the client has to answer and close. */
#define CLOSE_TIMEOUT_MS 2000
/* A chat line is short; this also bounds what one client can make us
   allocate. */
#define MAX_MESSAGE 4096
/* In bytes of UTF-8. */
#define MAX_NAME 24
/* Queued bytes above which a client is not read (it is sending faster
   than it takes the echoes of its own messages), and above which a
   client that does not read is closed. */
#define SOFT_BOUND ((size_t) 64 * 1024)
#define HARD_BOUND ((size_t) 1024 * 1024)

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
  "#log .fail { color: #b00; }\n"
  "#log .fail::before { content: '\\2717  '; }\n"
  "#who { padding: .3em 1em; font-size: .9em; color: #555;\n"
  "  border-bottom: 1px solid #ccc; }\n"
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
  "<div id='who'></div>\n"
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
  "  /* Reconnection: after a close the user did not ask for, with a\n"
  "     growing, jittered delay; a welcome resets it. */\n"
  "  var leaving = false;\n"
  "  var retryTimer = null;\n"
  "  var retries = 0;\n"
  "  /* With acks (a cluster), each message sent waits for \"sent\" or\n"
  "     \"error\"; null until the welcome tells. */\n"
  "  var acks = false;\n"
  "  var sentCount = 0;\n"
  "  var pending = [];\n"
  "  var mySid = null;\n"
  "  var members = null;\n"
  "  var online = 0;\n"
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
  "  function showWho() {\n"
  "    var t = online + ' online';\n"
  "    if (members) {\n"
  "      t += ': ' + members.join(', ');\n"
  "      if (members.length < online) t += ', ...';\n"
  "    }\n"
  "    byId('who').textContent = t;\n"
  "  }\n"
  "  function setJoined(joined) {\n"
  "    byId('name').disabled = joined;\n"
  "    byId('join').textContent = joined ? 'Leave' : 'Join';\n"
  "    byId('text').disabled = !joined;\n"
  "    byId('send').disabled = !joined;\n"
  "    if (joined) byId('text').focus();\n"
  "  }\n"
  "  function failPending(why) {\n"
  "    for (var i = 0; i < pending.length; i++)\n"
  "      add('fail', null,\n"
  "        'Not delivered: ' + pending[i].text + ' (' + why + ')');\n"
  "    pending = [];\n"
  "  }\n"
  "  function settle(m, ok) {\n"
  "    for (var i = 0; i < pending.length; i++)\n"
  "      if (pending[i].n === m.n) {\n"
  "        var p = pending.splice(i, 1)[0];\n"
  "        if (!ok)\n"
  "          add('fail', null, 'Not delivered: ' + p.text + ' (' + m.text + "
  "')');\n"
  "        return;\n"
  "      }\n"
  "  }\n"
  "  function connect() {\n"
  "    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://')\n"
  "      + location.host + '/';\n"
  "    var name = byId('name').value.trim();\n"
  "    if (name) url += '?name=' + encodeURIComponent(name);\n"
  "    if (retryTimer !== null) clearTimeout(retryTimer);\n"
  "    retryTimer = null;\n"
  "    leaving = false;\n"
  "    acks = null;\n"
  "    sentCount = 0;\n"
  "    pending = [];\n"
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
  "      if (typeof m.online === 'number') online = m.online;\n"
  "      if (m.type === 'msg') add('', m.name, m.text);\n"
  "      else if (m.type === 'join') {\n"
  "        if (m.sid && m.sid === mySid) return;\n"
  "        if (members) members.push(m.name);\n"
  "        add('info', null, m.name + ' joined' + n);\n"
  "      } else if (m.type === 'leave') {\n"
  "        if (members && members.indexOf(m.name) >= 0)\n"
  "          members.splice(members.indexOf(m.name), 1);\n"
  "        add('info', null, m.name + ' left' + n);\n"
  "      } else if (m.type === 'welcome') {\n"
  "        byId('name').value = m.name;\n"
  "        acks = m.acks === true;\n"
  "        if (!acks) pending = [];\n"
  "        mySid = m.sid || null;\n"
  "        members = m.members || null;\n"
  "        retries = 0;\n"
  "        if (m.server) setState('connected to ' + m.server, true);\n"
  "        add('info', null, 'You are ' + m.name + n);\n"
  "        if (m.cluster === false)\n"
  "          add('fail', null, 'This server has no link to the others now.');\n"
  "      } else if (m.type === 'roster') {\n"
  "        members = m.members || null;\n"
  "      } else if (m.type === 'sent') settle(m, true);\n"
  "      else if (m.type === 'error') settle(m, false);\n"
  "      else if (m.type === 'status' && m.cluster)\n"
  "        add('info', null, 'Linked to the other servers again; messages'\n"
  "          + ' sent meanwhile may be missing.');\n"
  "      else if (m.type === 'status')\n"
  "        add('fail', null, 'Lost the link to the other servers: messages'\n"
  "          + ' cannot be delivered now.');\n"
  "      showWho();\n"
  "    };\n"
  "    ws.onclose = function (e) {\n"
  "      var why = ' (' + e.code + (e.reason ? ': ' + e.reason : '') + ')';\n"
  "      /* Going away, abnormal closure, server error or restart: another\n"
  "         try may well reach a server that works. */\n"
  "      var again = !leaving && [1001, 1006, 1011, 1012, 1013, 1014]\n"
  "        .indexOf(e.code) >= 0;\n"
  "      if (acks) failPending('connection closed');\n"
  "      pending = [];\n"
  "      add('info', null, 'Disconnected' + why + '.');\n"
  "      byId('join').disabled = false;\n"
  "      setJoined(false);\n"
  "      ws = null;\n"
  "      if (again) {\n"
  "        var delay = Math.min(4000, 250 * Math.pow(2, retries++));\n"
  "        delay = Math.round(delay * (0.75 + Math.random() / 2));\n"
  "        setState('disconnected' + why + ', reconnecting in '\n"
  "          + (delay / 1000).toFixed(1) + ' s', false);\n"
  "        retryTimer = setTimeout(function () {\n"
  "          retryTimer = null;\n"
  "          if (!ws) connect();\n"
  "        }, delay);\n"
  "      } else setState('disconnected' + why, false);\n"
  "    };\n"
  "  }\n"
  "  byId('join').onclick = function () {\n"
  "    if (ws) { leaving = true; ws.close(1000); } else connect();\n"
  "  };\n"
  "  byId('name').onkeydown = function (e) {\n"
  "    if (e.key === 'Enter' && !ws) connect();\n"
  "  };\n"
  "  byId('form').onsubmit = function (e) {\n"
  "    e.preventDefault();\n"
  "    var t = byId('text');\n"
  "    if (ws && ws.readyState === WebSocket.OPEN && t.value) {\n"
  "      ws.send(t.value);\n"
  "      /* The server numbers every message it receives from 1. */\n"
  "      sentCount++;\n"
  "      if (acks !== false) pending.push({ n: sentCount, text: t.value });\n"
  "      t.value = '';\n"
  "    }\n"
  "  };\n"
  "})();\n"
  "</script>\n"
  "</body>\n"
  "</html>\n";


/**
 * One chat participant, owned by the loop thread of its connection.
 */
struct Member
{
  /* The loop's list of members. */
  struct Member *prev;
  struct Member *next;
  /* Its session, from the open event to the end event. */
  struct MHD_WebSocketSession *session;
  /* Its connection id (MHD_websocket_server_send()). */
  unsigned long long conn_id;
  /* The ?name= of the request, until the connection opens. */
  char *wanted;
  char name[MAX_NAME + 1];
  /* The rest is for --redis. */
  struct MHD_WebSocketLoop *loop;
  /* Unique in this process; with the server's name it names the member
     in the cluster. */
  unsigned long id;
  /* Messages received, the number each is acknowledged with. */
  unsigned long seq;
  /* Answers of the bus still to come; the member is freed when its
     connection has closed and none is left. */
  unsigned int refs;
  int closed;
};

/* Broadcast groups: members, and connections not (yet) members, which
   miss what is broadcast (a newcomer its own join). */
#define GROUP_MEMBERS 0
#define GROUP_OUTSIDE 1

static struct MHD_WebSocketServer *server;
static unsigned int online_count;
static unsigned int guest_counter;
static unsigned long member_counter;

#ifdef CHAT_WITH_REDIS
/* Set with --redis; its hooks run in the first loop. */
static struct ChatBus *bus;
/* --redis was given: until the bus is up (just after the daemon started),
   members are asked to come back (1013) rather than served alone. */
static int bus_wanted;
/* This process's name in the cluster: host:port. */
static char server_id[128];
#endif
/* --redis HOST:PORT, 0 without. */
static char redis_host[256];
static unsigned int redis_port;
/* --no-presence: no join and leave events (for benchmarks with
   thousands of members, where every join would reach every member). */
static int no_presence;


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
/* Broadcast                                                          */
/* ------------------------------------------------------------------ */

/**
 * Sends @a json to every member, from a loop thread.  The message is
 * encoded once (server frames are unmasked, so the same bytes suit every
 * client, on every loop), and compressed once more, on its own, for the
 * members that compress.
 */
static void
broadcast_json (const char *json, size_t len)
{
  struct MHD_WebSocketBroadcast *b;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_broadcast_create (&b, 0, json, len, NULL, NULL))
    return;
  (void) MHD_websocket_server_broadcast (server, GROUP_MEMBERS, b);
  MHD_websocket_broadcast_release (b);
}


static void
broadcast (const struct Buf *json)
{
  if (NULL != json->data)
    broadcast_json (json->data, json->len);
}


/* ------------------------------------------------------------------ */
/* The cluster (--redis)                                              */
/* ------------------------------------------------------------------ */

#ifdef CHAT_WITH_REDIS
static void free_user (void *cls, void *user);


/* Drops a reference of the bus; in the member's loop. */
static void
member_release (struct Member *m)
{
  if ((0 == --m->refs) && m->closed)
    free_user (NULL, m);
}

/** A text for one member, on its way to the member's loop. */
struct Note
{
  struct Member *m;
  size_t len;
  char text[];
};


static void
note_task (struct MHD_WebSocketLoop *loop, void *arg)
{
  struct Note *note = arg;

  (void) loop;
  if (! note->m->closed)
    (void) MHD_websocket_server_send (server, note->m->conn_id, 0, note->text,
                                      note->len);
  member_release (note->m);
  free (note);
}


/**
 * Sends @a json to member @a m from whatever thread, in its own loop,
 * and drops the reference the bus held.
 */
static void
note_member (struct Member *m, const struct Buf *json)
{
  struct Note *note = NULL;

  if (NULL != json->data)
    note = malloc (sizeof (*note) + json->len);
  if (NULL != note)
  {
    note->m = m;
    note->len = json->len;
    memcpy (note->text, json->data, json->len);
    if (MHD_websocket_loop_current () == m->loop)
    {
      note_task (m->loop, note);
      return;
    }
    if (MHD_WEBSOCKET_STATUS_OK
        == MHD_websocket_loop_post (m->loop, &note_task, note))
      return;
    free (note);
  }
  if (MHD_websocket_loop_current () == m->loop)
    member_release (m);
  /* Otherwise the loop has ended (the server stops) and the member
     stays allocated until the process exits. */
}


/**
 * Sends @a json to every member of this process, encoded once.
 */
static void
deliver_all (const char *json, size_t len)
{
  broadcast_json (json, len);
}


static void
add_names (struct Buf *b, const char *const *names, size_t n)
{
  size_t i;

  buf_add_str (b, ",\"members\":[");
  for (i = 0; i < n; i++)
  {
    if (i > 0)
      buf_add_str (b, ",");
    buf_add_json (b, names[i], strlen (names[i]));
  }
  buf_add_str (b, "]");
}


static void
add_sid (struct Buf *b, const struct Member *m)
{
  char sid[sizeof (server_id) + 32];

  snprintf (sid, sizeof (sid), "%s/%lu", server_id, m->id);
  buf_add_str (b, ",\"sid\":");
  buf_add_json (b, sid, strlen (sid));
}


static void
hook_deliver (void *cls, const char *json, size_t len)
{
  (void) cls;
  deliver_all (json, len);
}


static void
hook_published (void *cls, void *token, unsigned long seq, int ok,
                const char *why)
{
  struct Member *m = token;
  struct Buf json = { NULL, 0, 0 };
  char num[48];

  (void) cls;
  snprintf (num, sizeof (num), "\"n\":%lu", seq);
  if (ok)
  {
    buf_add_str (&json, "{\"type\":\"sent\",");
    buf_add_str (&json, num);
  }
  else
  {
    buf_add_str (&json, "{\"type\":\"error\",");
    buf_add_str (&json, num);
    buf_add_str (&json, ",\"text\":");
    buf_add_json (&json, why, strlen (why));
    fprintf (stderr, "Message %lu of %s not delivered: %s\n", seq, m->name,
             why);
  }
  buf_add_str (&json, "}");
  note_member (m, &json);
  free (json.data);
}


static void
hook_joined (void *cls, void *token, int ok, unsigned long online,
             const char *const *names, size_t n)
{
  struct Member *m = token;
  struct Buf json = { NULL, 0, 0 };
  struct Buf join = { NULL, 0, 0 };
  char num[32];

  (void) cls;
  if (! ok)
  {
    /* Redis is unreachable: what this process knows. */
    online = __atomic_load_n (&online_count, __ATOMIC_RELAXED);
    n = 0;
  }
  buf_add_str (&json, "{\"type\":\"welcome\",\"name\":");
  buf_add_json (&json, m->name, strlen (m->name));
  snprintf (num, sizeof (num), ",\"online\":%lu", online);
  buf_add_str (&json, num);
  add_names (&json, names, n);
  buf_add_str (&json, ",\"server\":");
  buf_add_json (&json, server_id, strlen (server_id));
  add_sid (&json, m);
  buf_add_str (&json, ",\"acks\":true");
  if (! ok)
    buf_add_str (&json, ",\"cluster\":false");
  buf_add_str (&json, "}");
  fprintf (stderr, "%s joined on %s (%lu online)\n", m->name, server_id,
           online);
  /* Its own join comes back to the member too, marked with its sid;
     built before the welcome is handed over, which may free m. */
  buf_add_str (&join, "{\"type\":\"join\",\"name\":");
  buf_add_json (&join, m->name, strlen (m->name));
  buf_add_str (&join, num);
  add_sid (&join, m);
  buf_add_str (&join, "}");
  note_member (m, &json);
  free (json.data);
  if ((NULL != join.data) && ! no_presence)
    chat_bus_broadcast (bus, join.data, join.len);
  free (join.data);
}


static void
hook_left (void *cls, const char *name, unsigned long online)
{
  struct Buf json = { NULL, 0, 0 };

  (void) cls;
  if (no_presence)
    return;
  make_presence (&json, "leave", name, (unsigned int) online);
  if (NULL != json.data)
    chat_bus_broadcast (bus, json.data, json.len);
  free (json.data);
}


static void
hook_roster (void *cls, unsigned long online, const char *const *names,
             size_t n)
{
  struct Buf json = { NULL, 0, 0 };
  char num[48];

  (void) cls;
  snprintf (num, sizeof (num), "{\"type\":\"roster\",\"online\":%lu", online);
  buf_add_str (&json, num);
  add_names (&json, names, n);
  buf_add_str (&json, "}");
  if (NULL != json.data)
    deliver_all (json.data, json.len);
  free (json.data);
}


static void
hook_link (void *cls, int up)
{
  const char *json = up ? "{\"type\":\"status\",\"cluster\":true}"
                        : "{\"type\":\"status\",\"cluster\":false}";

  (void) cls;
  deliver_all (json, strlen (json));
}
#endif


/* ------------------------------------------------------------------ */
/* Connections                                                        */
/* ------------------------------------------------------------------ */

/**
 * Picks the display name: the requested one, cleaned of control
 * characters and cut to MAX_NAME bytes on a character boundary, or
 * "guestN" when none is usable.
 */
static void
choose_name (struct Member *c, struct MHD_WebSocketStream *ws,
             const char *wanted)
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
          == MHD_websocket_encode_text (ws, c->name, n,
                                        MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                        &frame, &frame_len, NULL)))
  {
    MHD_websocket_free (ws, frame);
    return;
  }
  guest = __atomic_add_fetch (&guest_counter, 1, __ATOMIC_RELAXED);
  snprintf (c->name, sizeof (c->name), "guest%u", guest);
}


/* In the access handler (ex_upgrade()): the request's ?name= is readable
   now.  The member comes back through on_end() whatever happens. */
static void *
make_member (struct MHD_Connection *connection)
{
  struct Member *m = calloc (1, sizeof (*m));
  const char *wanted;

  if (NULL == m)
    return NULL;
  wanted =
    MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "name");
  /* Bounded: the name is cut to MAX_NAME bytes anyway, and control
     characters (which are skipped) cannot make it much longer. */
  if (NULL != wanted)
    m->wanted = strndup (wanted, 1024);
  return m;
}


static void
free_user (void *cls, void *user)
{
  struct Member *m = user;

  (void) cls;
  free (m->wanted);
  free (m);
}


static void
on_open (void *cls, struct MHD_WebSocketSession *session)
{
  struct Member *m = cls;
  struct Buf json = { NULL, 0, 0 };
  unsigned int now_online;

  /* Outside the members until it is one (and has had its welcome). */
  MHD_websocket_server_set_group (session, GROUP_OUTSIDE);
#ifdef CHAT_WITH_REDIS
  if (bus_wanted && (NULL == __atomic_load_n (&bus, __ATOMIC_ACQUIRE)))
  {
    (void) MHD_websocket_session_close (session, 1013 /* try again later */,
                                        "starting up");
    return;
  }
#endif
  m->session = session;
  m->conn_id = MHD_websocket_server_connection_id (session);
  choose_name (m, MHD_websocket_session_stream (session), m->wanted);
  free (m->wanted);
  m->wanted = NULL;
  now_online = __atomic_add_fetch (&online_count, 1, __ATOMIC_RELAXED);
  m->loop = MHD_websocket_loop_current ();
  m->id = __atomic_add_fetch (&member_counter, 1, __ATOMIC_RELAXED);
#ifdef CHAT_WITH_REDIS
  if (NULL != bus)
  {
    /* hook_joined() sends the welcome once Redis counted everyone. */
    MHD_websocket_server_set_group (session, GROUP_MEMBERS);
    m->refs++;
    chat_bus_join (bus, m, m->id, m->name);
    return;
  }
#endif

  make_presence (&json, "welcome", m->name, now_online);
  if (NULL != json.data)
    (void) MHD_websocket_session_send_text (session, json.data, json.len);
  free (json.data);
  json.data = NULL;
  json.len = json.cap = 0;
  /* The newcomer learns of its own arrival from the welcome: the join
     reaches this loop's members now, before it becomes one. */
  if (! no_presence)
  {
    make_presence (&json, "join", m->name, now_online);
    broadcast (&json);
    free (json.data);
  }
  MHD_websocket_server_set_group (session, GROUP_MEMBERS);
}


static void
on_message (void *cls, struct MHD_WebSocketSession *session,
            enum MHD_WEBSOCKET_STATUS type, const char *data, size_t len)
{
  struct Member *m = cls;
  struct Buf json = { NULL, 0, 0 };

  if (MHD_WEBSOCKET_STATUS_BINARY_FRAME == type)
  {
    (void) MHD_websocket_session_close (
      session, MHD_WEBSOCKET_CLOSEREASON_UNSUPPORTED_DATATYPE,
      "only text messages");
    return;
  }
  if ((MHD_WEBSOCKET_STATUS_TEXT_FRAME != type) || (0 == len)
      || (NULL == m->session))
    return;
  buf_add_str (&json, "{\"type\":\"msg\",\"name\":");
  buf_add_json (&json, m->name, strlen (m->name));
  buf_add_str (&json, ",\"text\":");
  buf_add_json (&json, data, len);
  buf_add_str (&json, "}");
#ifdef CHAT_WITH_REDIS
  if (NULL != bus)
  {
    /* Every process delivers it, this one too, when it comes back from
       Redis; the sender is told whether it went out. */
    m->seq++;
    m->refs++;
    if (NULL != json.data)
      chat_bus_publish (bus, m, m->seq, json.data, json.len);
    else
      hook_published (NULL, m, m->seq, 0, "out of memory");
    free (json.data);
    return;
  }
#endif
  broadcast (&json);
  free (json.data);
}


static void
on_end (void *cls, struct MHD_WebSocketSession *session,
        enum MHD_WEBSOCKET_END_REASON why, unsigned short code)
{
  struct Member *m = cls;
  struct Buf json = { NULL, 0, 0 };
  unsigned int left;

  (void) code;
  ex_note_end ();
  if ((NULL == session) || (NULL == m->session))
  {
    /* Never opened, or on_open refused it: never counted. */
    free_user (NULL, m);
    return;
  }
  left = __atomic_sub_fetch (&online_count, 1, __ATOMIC_RELAXED);
  if (MHD_WEBSOCKET_END_STALLED == why)
    fprintf (stderr, "Dropping %s: stalled, its queue passed %lu bytes\n",
             m->name, (unsigned long) HARD_BOUND);
  else if (MHD_WEBSOCKET_END_IDLE == why)
    fprintf (stderr, "Dropping %s: silent for too long\n", m->name);
#ifdef CHAT_WITH_REDIS
  if (NULL != bus)
    /* Redis's online list announces it (at shutdown the bus did). */
    chat_bus_leave (bus, m->id);
  else
#endif
    if ((MHD_WEBSOCKET_END_SHUTDOWN != why) && ! no_presence)
  {
    make_presence (&json, "leave", m->name, left);
    broadcast (&json);
    free (json.data);
  }
  /* Answers of the bus still on their way free it. */
  m->closed = 1;
  if (0 == m->refs)
    free_user (NULL, m);
}


/* ------------------------------------------------------------------ */
/* HTTP                                                               */
/* ------------------------------------------------------------------ */

static enum MHD_Result
on_request (void *cls, struct MHD_Connection *connection, const char *url,
            const char *method, const char *version, const char *upload_data,
            size_t *upload_data_size, void **req_cls)
{
  (void) cls;
  (void) upload_data;
  (void) upload_data_size;
  (void) req_cls;
  if (0 != strcmp (url, "/"))
    return ex_http_text (connection, MHD_HTTP_NOT_FOUND, "Not found.\n", NULL,
                         NULL);
  /* Any handshake header shows the client means to upgrade; a request
     that has some but not all of them gets told what is wrong instead of
     a web page it cannot use. */
  if (ex_wants_upgrade (connection))
    return ex_upgrade (server, connection, method, version, &make_member);

  if ((0 != strcmp (method, MHD_HTTP_METHOD_GET))
      && (0 != strcmp (method, MHD_HTTP_METHOD_HEAD)))
    return ex_http_text (connection, MHD_HTTP_METHOD_NOT_ALLOWED,
                         "Only GET is supported.\n", MHD_HTTP_HEADER_ALLOW,
                         "GET, HEAD");
  return ex_http_html (connection, page);
}


/* ------------------------------------------------------------------ */
/* Main                                                               */
/* ------------------------------------------------------------------ */

static void
usage (FILE *out, const char *argv0)
{
  fprintf (
    out,
    "usage: %s [-t N] [--cert FILE --key FILE] [--no-deflate] [--no-presence] "
    "[--redis HOST:PORT] [PORT]\n"
    "Serves a WebSocket chat on http://127.0.0.1:PORT/ "
    "(default port %d, 0 for any free port).\n%s"
    "  --no-presence  no join and leave events (benchmarks)\n"
    "  --redis HOST:PORT  share the chat with every chatserver using "
    "this Redis%s\n"
    "Environment: CHAT_PING_INTERVAL (default %d) and "
    "CHAT_IDLE_TIMEOUT (default %d), in seconds.\n",
    argv0, DEFAULT_PORT, ex_options_usage,
#ifdef CHAT_WITH_REDIS
    "",
#else
    " (not in this build: configured --without-hiredis)",
#endif
    PING_INTERVAL, IDLE_TIMEOUT);
}


/* --no-presence and --redis HOST:PORT, as an ExArgCallback. */
static int
own_option (int argc, char **argv, int *i)
{
  if (0 == strcmp (argv[*i], "--no-presence"))
  {
    no_presence = 1;
    return 1;
  }
  if ((0 != strcmp (argv[*i], "--redis")) || (*i + 1 >= argc))
    return 0;
  if (0
      != ex_parse_host_port (argv[*i + 1], redis_host, sizeof (redis_host),
                             &redis_port))
  {
    fprintf (stderr, "--redis wants HOST:PORT, not %s\n", argv[*i + 1]);
    return -2;
  }
#ifndef CHAT_WITH_REDIS
  fprintf (stderr, "This chatserver was configured --without-hiredis, so "
                   "without --redis (apt-get install libhiredis-dev, "
                   "then configure again)\n");
  return -2;
#else
  bus_wanted = 1;
#endif
  *i += 1;
  return 1;
}


/* ex_stop()'s hook: the bus lives in the first loop, which has ended. */
static void
free_bus (void *cls)
{
  (void) cls;
#ifdef CHAT_WITH_REDIS
  if (NULL != bus)
    chat_bus_free (bus);
#endif
}


int
main (int argc, char **argv)
{
  unsigned int port = DEFAULT_PORT;
  struct ExOptions opts;
  struct MHD_Daemon *daemon;
  int status = ex_parse_args (argc, argv, &own_option, &usage, &opts, &port);

  if (status >= 0)
    return status;
  {
    const struct ExSetting settings[] = {
      { MHD_WEBSOCKET_SESSION_OPTION_SOFT_BOUND, SOFT_BOUND },
      { MHD_WEBSOCKET_SESSION_OPTION_HARD_BOUND, HARD_BOUND },
      { MHD_WEBSOCKET_SESSION_OPTION_PING_INTERVAL_MS,
        1000ULL * ex_env_seconds ("CHAT_PING_INTERVAL", 1, PING_INTERVAL) },
      { MHD_WEBSOCKET_SESSION_OPTION_IDLE_TIMEOUT_MS,
        1000ULL * ex_env_seconds ("CHAT_IDLE_TIMEOUT", 1, IDLE_TIMEOUT) },
      { MHD_WEBSOCKET_SESSION_OPTION_CLOSE_TIMEOUT_MS, CLOSE_TIMEOUT_MS },
      /* An empty close frame is answered with 1000, a code with the
         same code and no reason. */
      { MHD_WEBSOCKET_SESSION_OPTION_EMPTY_CLOSE_CODE,
        MHD_WEBSOCKET_CLOSEREASON_REGULAR }
    };

    server = ex_server_create (settings, sizeof (settings) / sizeof (*settings),
                               &on_message, &on_end, &opts, MAX_MESSAGE);
  }
  /* Compression when offered, each server message on its own, so that a
     broadcast is compressed once for every member (and an idle member
     holds no compressor). */
  if ((NULL == server)
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_server_set (
            server, MHD_WEBSOCKET_SERVER_OPTION_DEFLATE_FLAGS,
            MHD_WEBSOCKET_DEFLATE_FLAG_SERVER_NO_CONTEXT_TAKEOVER)))
    return EXIT_FAILURE;
  MHD_websocket_server_set_open_callback (server, &on_open);
  daemon = ex_start (server, &opts, port, &on_request, NULL);
  if (NULL == daemon)
    return EXIT_FAILURE;
#ifdef CHAT_WITH_REDIS
  if (0 != redis_port)
  {
    static const struct ChatBusHooks hooks = {
      NULL,       &hook_deliver, &hook_published, &hook_joined,
      &hook_left, &hook_roster,  &hook_link
    };
    const union MHD_DaemonInfo *info;
    char host[64];

    info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
    if ((NULL != info) && (0 != info->port))
      port = info->port;
    if (0 != gethostname (host, sizeof (host)))
      strcpy (host, "localhost");
    host[sizeof (host) - 1] = '\0';
    snprintf (server_id, sizeof (server_id), "%s:%u", host, port);
    /* The bus lives in the first loop. */
    __atomic_store_n (&bus,
                      chat_bus_start (MHD_websocket_server_loop (server, 0),
                                      redis_host, redis_port, server_id,
                                      &hooks),
                      __ATOMIC_RELEASE);
    if (NULL == bus)
    {
      fprintf (stderr, "Could not start the Redis link\n");
      ex_stop (server, daemon, NULL, NULL, NULL);
      return EXIT_FAILURE;
    }
    fprintf (stderr, "Server %s: chat shared through Redis at %s:%u\n",
             server_id, redis_host, redis_port);
  }
#endif

  (void) ex_wait_signal ();
#ifdef CHAT_WITH_REDIS
  /* First off the cluster, members' leaves announced, while the loops
     still run. */
  if (NULL != bus)
    chat_bus_shutdown (bus);
#endif
  /* Every WebSocket is closed politely (1001 "server stopped"). */
  ex_stop (server, daemon, "server stopped", &free_bus, NULL);
  return EXIT_SUCCESS;
}
