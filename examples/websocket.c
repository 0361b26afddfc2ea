/*
  websocket.c -- a minimal WebSocket echo server built on GNU libmicrohttpd
  and libmicrohttpd_ws.

  GET / serves a small HTML page whose script connects back to the same
  host and port with a WebSocket; every text (or binary) message it sends
  comes back unchanged.  The HTTP side (handshake checks, the 101 answer)
  runs in libmicrohttpd's access handler; once libmicrohttpd hands over the
  upgraded socket, a thread of our own speaks the WebSocket protocol on it
  with MHD_websocket_decode() and the MHD_websocket_encode_*() functions.

  Usage: websocket [PORT]      (default 8080, 0 picks a free port)
  The server listens on 127.0.0.1 only and stops on SIGINT or SIGTERM.
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
#include <sys/types.h>
#include <unistd.h>

#include <microhttpd.h>
#include <microhttpd_ws.h>

#define DEFAULT_PORT 8080

/* Bounds the memory one client can make us hold for a message. */
#define MAX_PAYLOAD (1024 * 1024)

static const char page[] =
  "<!DOCTYPE html>\n"
  "<html lang='en'>\n"
  "<head>\n"
  "<meta charset='utf-8'>\n"
  "<title>WebSocket echo</title>\n"
  "<style>\n"
  "body { font-family: sans-serif; margin: 2em; }\n"
  "#log { border: 1px solid #999; height: 18em; overflow-y: auto;\n"
  "       padding: .5em; white-space: pre-wrap; }\n"
  ".out { color: #036; } .in { color: #060; } .info { color: #777; }\n"
  "</style>\n"
  "</head>\n"
  "<body>\n"
  "<h1>WebSocket echo</h1>\n"
  "<p>State: <span id='state'>connecting</span></p>\n"
  "<div id='log'></div>\n"
  "<form id='form'>\n"
  "<input id='text' size='50' autocomplete='off' autofocus>\n"
  "<button>Send</button>\n"
  "</form>\n"
  "<script>\n"
  "var log = document.getElementById('log');\n"
  "var state = document.getElementById('state');\n"
  "function show(cls, text) {\n"
  "  var line = document.createElement('div');\n"
  "  line.className = cls;\n"
  "  line.textContent = text;\n"
  "  log.appendChild(line);\n"
  "  log.scrollTop = log.scrollHeight;\n"
  "}\n"
  "var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';\n"
  "var ws = new WebSocket(scheme + location.host + '/');\n"
  "ws.onopen = function () { state.textContent = 'open'; };\n"
  "ws.onmessage = function (e) { show('in', 'received: ' + e.data); };\n"
  "ws.onerror = function () { show('info', 'connection error'); };\n"
  "ws.onclose = function (e) {\n"
  "  state.textContent = 'closed (code ' + e.code + ')';\n"
  "};\n"
  "document.getElementById('form').onsubmit = function (e) {\n"
  "  e.preventDefault();\n"
  "  var input = document.getElementById('text');\n"
  "  if (ws.readyState !== WebSocket.OPEN || input.value === '')\n"
  "    return;\n"
  "  ws.send(input.value);\n"
  "  show('out', 'sent: ' + input.value);\n"
  "  input.value = '';\n"
  "};\n"
  "</script>\n"
  "</body>\n"
  "</html>\n";


/**
 * One upgraded connection.  Sessions are listed so that shutdown can wake
 * their threads and wait for them: libmicrohttpd must not be stopped while
 * a thread still uses a socket or handle that it owns.
 */
struct Session
{
  struct Session *prev;
  struct Session *next;
  MHD_socket sock;
  struct MHD_UpgradeResponseHandle *urh;
  /* Bytes libmicrohttpd read past the request header. */
  char *extra;
  size_t extra_len;
};

static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sessions_cond;
static struct Session *sessions_head;
/* Sessions whose socket has not been handed back to libmicrohttpd yet. */
static unsigned int sessions_open;
static int stopping;


/**
 * Sends all of @a len bytes; a partial send() is continued.
 *
 * @return 0 on success, -1 when the socket failed
 */
static int
send_all (MHD_socket sock, const char *buf, size_t len)
{
  while (len > 0)
  {
    ssize_t n = send (sock, buf, len, MSG_NOSIGNAL);

    if (n < 0)
    {
      if (EINTR == errno)
        continue;
      return -1;
    }
    buf += n;
    len -= (size_t) n;
  }
  return 0;
}


/**
 * Encodes and sends a close frame.  Failing to send it does not matter:
 * the connection ends either way.
 */
static void
send_close (MHD_socket sock, struct MHD_WebSocketStream *ws,
            unsigned short code, const char *reason)
{
  char *frame;
  size_t frame_len;

  if (MHD_WEBSOCKET_STATUS_OK
      == MHD_websocket_encode_close (ws, code, reason,
                                     NULL == reason ? 0 : strlen (reason),
                                     &frame, &frame_len))
  {
    (void) send_all (sock, frame, frame_len);
    MHD_websocket_free (ws, frame);
  }
}


/**
 * Answers a close frame from the client with a close frame of our own.
 * A code the client may legitimately send is echoed (the usual answer);
 * an empty close frame is answered with 1000.  Codes from 5000 up pass the
 * decoder unjudged but RFC 6455 defines none of them, so they are
 * answered with 1002.
 */
static void
answer_close (MHD_socket sock, struct MHD_WebSocketStream *ws,
              const char *payload, size_t payload_len)
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
  send_close (sock, ws, answer, NULL);
}


/**
 * Decodes @a len received bytes and answers each complete frame.
 *
 * @return 0 to keep reading, 1 when the connection is over
 */
static int
process_input (MHD_socket sock, struct MHD_WebSocketStream *ws,
               const char *data, size_t len)
{
  size_t offset = 0;

  /* One decode call returns at most one frame: call again with the
     unconsumed rest until the decoder has taken every byte. */
  while (offset < len)
  {
    size_t used = 0;
    char *payload = NULL;
    size_t payload_len = 0;
    char *frame = NULL;
    size_t frame_len = 0;
    enum MHD_WEBSOCKET_STATUS status;
    int done = 0;

    status = MHD_websocket_decode (ws, data + offset, len - offset, &used,
                                   &payload, &payload_len);
    offset += used;
    switch (status)
    {
    case MHD_WEBSOCKET_STATUS_OK:
      /* Everything consumed, the next frame is not complete yet. */
      if (offset < len)
      {
        fprintf (stderr, "decoder stopped before the end of its input\n");
        send_close (sock, ws, MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION,
                    NULL);
        done = 1;
      }
      break;
    case MHD_WEBSOCKET_STATUS_TEXT_FRAME:
      /* The decoder has validated the text, so it re-encodes cleanly. */
      if (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_text (ws, payload, payload_len,
                                        MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                        &frame, &frame_len, NULL))
        done = send_all (sock, frame, frame_len) ? 1 : 0;
      break;
    case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
      if (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_binary (ws, payload, payload_len,
                                          MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                          &frame, &frame_len))
        done = send_all (sock, frame, frame_len) ? 1 : 0;
      break;
    case MHD_WEBSOCKET_STATUS_PING_FRAME:
      /* RFC 6455 5.5.3: the pong carries the ping's payload. */
      if (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_pong (ws, payload, payload_len, &frame,
                                        &frame_len))
        done = send_all (sock, frame, frame_len) ? 1 : 0;
      break;
    case MHD_WEBSOCKET_STATUS_PONG_FRAME:
      /* We never ping, so an unsolicited pong is simply ignored. */
      break;
    case MHD_WEBSOCKET_STATUS_CLOSE_FRAME:
      answer_close (sock, ws, payload, payload_len);
      done = 1;
      break;
    case MHD_WEBSOCKET_STATUS_MEMORY_ERROR:
      send_close (sock, ws, MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION,
                  NULL);
      done = 1;
      break;
    default:
      /* Protocol, UTF-8 and size errors: the stream is now invalid and,
         thanks to GENERATE_CLOSE_FRAMES_ON_ERROR, payload holds the close
         frame that tells the client why. */
      if (NULL != payload)
        (void) send_all (sock, payload, payload_len);
      done = 1;
      break;
    }
    if (NULL != frame)
      MHD_websocket_free (ws, frame);
    if (NULL != payload)
      MHD_websocket_free (ws, payload);
    if (done)
      return 1;
    if (MHD_WEBSOCKET_STATUS_OK == status)
      break;
  }
  return 0;
}


static void
session_unlist (struct Session *s)
{
  pthread_mutex_lock (&sessions_lock);
  if (NULL != s->prev)
    s->prev->next = s->next;
  else
    sessions_head = s->next;
  if (NULL != s->next)
    s->next->prev = s->prev;
  pthread_mutex_unlock (&sessions_lock);
}


/**
 * Runs one WebSocket connection until either side closes it.
 */
static void *
session_main (void *cls)
{
  struct Session *s = cls;
  struct MHD_WebSocketStream *ws = NULL;
  char buf[4096];
  int done = 0;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_stream_init (
        &ws,
        MHD_WEBSOCKET_FLAG_SERVER | MHD_WEBSOCKET_FLAG_NO_FRAGMENTS
          | MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR,
        MAX_PAYLOAD))
    done = 1;
  if (! done && (s->extra_len > 0))
    done = process_input (s->sock, ws, s->extra, s->extra_len);
  while (! done)
  {
    ssize_t got = recv (s->sock, buf, sizeof (buf), 0);

    if ((got < 0) && (EINTR == errno))
      continue;
    if (got <= 0)
    {
      /* The client went away, or shutdown wakes us with 0. */
      int leaving;

      pthread_mutex_lock (&sessions_lock);
      leaving = stopping;
      pthread_mutex_unlock (&sessions_lock);
      if (leaving && (NULL != ws))
        send_close (s->sock, ws, MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY,
                    "server shutting down");
      break;
    }
    done = process_input (s->sock, ws, buf, (size_t) got);
  }
  if (NULL != ws)
    MHD_websocket_stream_free (ws);

  /* Unlist before closing: from now on nobody may touch the socket, which
     libmicrohttpd closes (and the number may be reused) after the call. */
  session_unlist (s);
  MHD_upgrade_action (s->urh, MHD_UPGRADE_ACTION_CLOSE);

  pthread_mutex_lock (&sessions_lock);
  sessions_open--;
  pthread_cond_broadcast (&sessions_cond);
  pthread_mutex_unlock (&sessions_lock);
  free (s->extra);
  free (s);
  return NULL;
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
  struct Session *s;
  pthread_attr_t attr;
  pthread_t thread;
  int flags;
  int ok = 0;

  (void) cls;
  (void) connection;
  (void) req_cls;
  s = calloc (1, sizeof (*s));
  if (NULL == s)
  {
    MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
    return;
  }
  s->sock = sock;
  s->urh = urh;
  if (extra_in_size > 0)
  {
    s->extra = malloc (extra_in_size);
    if (NULL == s->extra)
    {
      free (s);
      MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
      return;
    }
    memcpy (s->extra, extra_in, extra_in_size);
    s->extra_len = extra_in_size;
  }
  /* libmicrohttpd may hand over a non-blocking socket; our thread wants
     plain blocking recv() and send(). */
  flags = fcntl (sock, F_GETFL);
  if (flags >= 0)
    (void) fcntl (sock, F_SETFL, flags & ~O_NONBLOCK);

  pthread_mutex_lock (&sessions_lock);
  if (! stopping)
  {
    s->next = sessions_head;
    if (NULL != sessions_head)
      sessions_head->prev = s;
    sessions_head = s;
    sessions_open++;
    ok = 1;
  }
  pthread_mutex_unlock (&sessions_lock);
  if (! ok)
  {
    free (s->extra);
    free (s);
    MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
    return;
  }

  ok = 0;
  if (0 == pthread_attr_init (&attr))
  {
    if ((0 == pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED))
        && (0 == pthread_create (&thread, &attr, &session_main, s)))
      ok = 1;
    pthread_attr_destroy (&attr);
  }
  if (! ok)
  {
    session_unlist (s);
    MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
    pthread_mutex_lock (&sessions_lock);
    sessions_open--;
    pthread_cond_broadcast (&sessions_cond);
    pthread_mutex_unlock (&sessions_lock);
    free (s->extra);
    free (s);
  }
}


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
  const char *key;
  char accept[29];
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
  key = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                     "Sec-WebSocket-Key");
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_create_accept_header (key, accept))
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
          != MHD_add_response_header (response, "Sec-WebSocket-Accept",
                                      accept)))
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


/**
 * Waits until no session is open or @a seconds have passed.
 *
 * @return the number of sessions still open
 */
static unsigned int
wait_for_sessions (int seconds)
{
  struct timespec deadline;
  unsigned int left;

  clock_gettime (CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += seconds;
  pthread_mutex_lock (&sessions_lock);
  while (sessions_open > 0)
    if (ETIMEDOUT
        == pthread_cond_timedwait (&sessions_cond, &sessions_lock, &deadline))
      break;
  left = sessions_open;
  pthread_mutex_unlock (&sessions_lock);
  return left;
}


/**
 * Shuts down the sockets of every open session, which wakes the threads
 * blocked in recv() (SHUT_RD) or also those blocked in send() (SHUT_RDWR).
 */
static void
wake_sessions (int how)
{
  struct Session *s;

  pthread_mutex_lock (&sessions_lock);
  for (s = sessions_head; NULL != s; s = s->next)
    (void) shutdown (s->sock, how);
  pthread_mutex_unlock (&sessions_lock);
}


static void
usage (FILE *out, const char *argv0)
{
  fprintf (out,
           "usage: %s [PORT]\n"
           "Serves a WebSocket echo page on http://127.0.0.1:PORT/ "
           "(default port %d, 0 for any free port).\n",
           argv0, DEFAULT_PORT);
}


int
main (int argc, char **argv)
{
  unsigned long port = DEFAULT_PORT;
  struct sockaddr_in addr;
  struct MHD_Daemon *daemon;
  const union MHD_DaemonInfo *info;
  pthread_condattr_t cattr;
  sigset_t sigs;
  int sig;

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

  /* Shutdown waits on a monotonic clock, immune to clock changes. */
  pthread_condattr_init (&cattr);
  pthread_condattr_setclock (&cattr, CLOCK_MONOTONIC);
  pthread_cond_init (&sessions_cond, &cattr);
  pthread_condattr_destroy (&cattr);

  /* Block the stop signals before any thread exists, so that every thread
     inherits the mask and main() alone receives them in sigwait(). */
  sigemptyset (&sigs);
  sigaddset (&sigs, SIGINT);
  sigaddset (&sigs, SIGTERM);
  pthread_sigmask (SIG_BLOCK, &sigs, NULL);
  signal (SIGPIPE, SIG_IGN);

  memset (&addr, 0, sizeof (addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons ((uint16_t) port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  daemon = MHD_start_daemon (
    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION
      | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG,
    (uint16_t) port, NULL, NULL, &on_request, NULL, MHD_OPTION_SOCK_ADDR,
    (struct sockaddr *) &addr, MHD_OPTION_END);
  if (NULL == daemon)
  {
    fprintf (stderr, "Could not start the server on 127.0.0.1:%lu\n", port);
    return EXIT_FAILURE;
  }
  info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
  if ((NULL != info) && (0 != info->port))
    port = info->port;
  /* Then the libmicrohttpd loaded at run time (0.9.75 and 1.0.x share a
     soname). */
  printf ("Serving on http://127.0.0.1:%lu/\nlibmicrohttpd %s\n", port,
          MHD_get_version ());
  fflush (stdout);

  while (0 != sigwait (&sigs, &sig))
    ;

  /* Close the WebSockets first: MHD_stop_daemon() would otherwise close
     their sockets under the feet of the session threads. */
  pthread_mutex_lock (&sessions_lock);
  stopping = 1;
  pthread_mutex_unlock (&sessions_lock);
  wake_sessions (SHUT_RD);
  if (0 != wait_for_sessions (3))
  {
    /* A client that does not read blocks its thread in send(). */
    wake_sessions (SHUT_RDWR);
    if (0 != wait_for_sessions (2))
      fprintf (stderr, "Some WebSocket connections did not end in time\n");
  }
  MHD_stop_daemon (daemon);
  return EXIT_SUCCESS;
}
