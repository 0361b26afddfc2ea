/*
  echo.c -- a WebSocket echo server for conformance testing, built on GNU
  libmicrohttpd and libmicrohttpd_ws.

  Every text message comes back as text and every binary message as
  binary, whole (fragmented messages are reassembled first); a ping is
  answered with a pong carrying the same payload, unsolicited pongs are
  ignored, and a close frame is answered with a close frame before the
  connection ends (RFC 6455 5.5.1).  When the decoder finds a protocol,
  UTF-8 or size error, the close frame it generated (1002, 1007 or 1009)
  is sent and the connection is closed cleanly: our side of the TCP
  stream is shut down, whatever the peer still sends is read and dropped
  for a short while, and then the socket is closed.  That way the peer
  sees the close frame and a FIN, not a reset.  Every wait is bounded: a
  peer silent for IDLE_TIMEOUT seconds gets a 1001 close, one that stops
  reading is dropped after SEND_TIMEOUT seconds, an HTTP request must be
  complete within HTTP_TIMEOUT seconds.

  Usage: echo [-m MAX_PAYLOAD_BYTES] [PORT]
  The default port is 8080 (0 picks a free one), the default maximum
  message size 16 MiB (0 means no limit).  The server listens on
  127.0.0.1 only, accepts the upgrade on any path, and stops on SIGINT or
  SIGTERM.  Its first line on stdout is "Serving on http://127.0.0.1:PORT/".
*/

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <microhttpd.h>
#include <microhttpd_ws.h>

#define DEFAULT_PORT 8080

/* Large enough for the 16 MiB messages of conformance suites. */
#define DEFAULT_MAX_PAYLOAD ((size_t) 16 * 1024 * 1024)

/* A peer that sends nothing for this long is considered dead. */
#define IDLE_TIMEOUT 60

/* A client that connects but does not finish its HTTP request in this
   time is dropped by libmicrohttpd. */
#define HTTP_TIMEOUT 10

/* One send() may block this long; a whole frame gets the same budget. */
#define SEND_TIMEOUT 10

/* After our close frame: how long and how much we keep reading (and
   dropping) so that closing the socket does not reset the connection
   under data the peer is still sending. */
#define DRAIN_MILLISECONDS 2000
#define DRAIN_MAX_BYTES ((size_t) 64 * 1024 * 1024)

#define RECV_BUFFER_SIZE 65536

/* Connections served at once.  MHD's default is FD_SETSIZE - 4, which
   a test with thousands of stalled peers would exhaust; MHD's one
   polling thread uses epoll (MHD_USE_AUTO), which has no such ceiling,
   and the file descriptor limit is raised to match.  Each upgraded
   connection runs in a thread of our own (on_upgrade), so MHD needs no
   thread per connection; libmicrohttpd 0.9.75's thread-per-connection
   mode also corrupted its heap after a few thousand upgraded
   connections had closed.  */
#define MAX_CONNECTIONS 8192


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
  /* permessage-deflate as agreed in the handshake; empty: none. */
  char deflate[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
};

static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sessions_cond;
static struct Session *sessions_head;
/* Sessions whose socket has not been handed back to libmicrohttpd yet. */
static unsigned int sessions_open;
/** Sessions ended so far; main() trims the heap when it changes. */
static unsigned long sessions_ended;
static int stopping;

static size_t max_payload = DEFAULT_MAX_PAYLOAD;
/* Accept permessage-deflate when offered (--no-deflate: never). */
static int use_deflate = 1;


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


static int
is_stopping (void)
{
  int ret;

  pthread_mutex_lock (&sessions_lock);
  ret = stopping;
  pthread_mutex_unlock (&sessions_lock);
  return ret;
}


static long
milliseconds_between (const struct timespec *a, const struct timespec *b)
{
  return (long) (b->tv_sec - a->tv_sec) * 1000
         + (long) (b->tv_nsec - a->tv_nsec) / 1000000;
}


static void
set_timeout (MHD_socket sock, int option, long milliseconds)
{
  struct timeval tv;

  tv.tv_sec = milliseconds / 1000;
  tv.tv_usec = (milliseconds % 1000) * 1000;
  (void) setsockopt (sock, SOL_SOCKET, option, &tv, sizeof (tv));
}


/**
 * Sends all of @a len bytes within SEND_TIMEOUT seconds.  SO_SNDTIMEO
 * bounds each send(); the deadline also stops a peer that reads a trickle
 * at a time.
 *
 * @return 0 on success, -1 when the socket failed or the time ran out
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
    if ((len > 0)
        && (milliseconds_between (&start, &now) > SEND_TIMEOUT * 1000))
      return -1;
  }
  return 0;
}


/**
 * Encodes and sends a close frame.  Failing to send it does not matter:
 * the connection ends either way.
 */
static void
send_close (MHD_socket sock, struct MHD_WebSocketStream *ws,
            unsigned short code, const char *reason, size_t reason_len)
{
  char *frame;
  size_t frame_len;

  if (MHD_WEBSOCKET_STATUS_OK
      == MHD_websocket_encode_close (ws, code, reason, reason_len, &frame,
                                     &frame_len))
  {
    (void) send_all (sock, frame, frame_len);
    MHD_websocket_free (ws, frame);
  }
}


/**
 * Answers the peer's close frame (RFC 6455 5.5.1): an empty close frame
 * with an empty one, a close frame with a code with the same code and
 * reason.  The decoder already failed the connection on codes that may
 * not appear on the wire and on reasons that are not UTF-8; codes from
 * 5000 up pass it unjudged, but RFC 6455 7.4.2 defines none of them, so
 * they are answered with 1002.
 */
static void
answer_close (MHD_socket sock, struct MHD_WebSocketStream *ws,
              const char *payload, size_t payload_len)
{
  unsigned short code;
  const char *reason;
  size_t reason_len;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_split_close_reason (payload, payload_len, &code, &reason,
                                           &reason_len))
    send_close (sock, ws, MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR, NULL, 0);
  else if (MHD_WEBSOCKET_CLOSEREASON_NO_REASON == code)
    send_close (sock, ws, MHD_WEBSOCKET_CLOSEREASON_NO_REASON, NULL, 0);
  else if (code >= 5000)
    send_close (sock, ws, MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR, NULL, 0);
  else
    send_close (sock, ws, code, reason, reason_len);
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
                    NULL, 0);
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
      else
      {
        send_close (sock, ws, MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION,
                    NULL, 0);
        done = 1;
      }
      break;
    case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
      if (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_binary (ws, payload, payload_len,
                                          MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                          &frame, &frame_len))
        done = send_all (sock, frame, frame_len) ? 1 : 0;
      else
      {
        send_close (sock, ws, MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION,
                    NULL, 0);
        done = 1;
      }
      break;
    case MHD_WEBSOCKET_STATUS_PING_FRAME:
      /* RFC 6455 5.5.3: the pong carries the ping's payload. */
      if (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_pong (ws, payload, payload_len, &frame,
                                        &frame_len))
        done = send_all (sock, frame, frame_len) ? 1 : 0;
      break;
    case MHD_WEBSOCKET_STATUS_PONG_FRAME:
      /* We never ping, so a pong is unsolicited and ignored (5.5.3). */
      break;
    case MHD_WEBSOCKET_STATUS_CLOSE_FRAME:
      answer_close (sock, ws, payload, payload_len);
      done = 1;
      break;
    case MHD_WEBSOCKET_STATUS_MEMORY_ERROR:
      send_close (sock, ws, MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION,
                  NULL, 0);
      done = 1;
      break;
    default:
      /* Protocol, UTF-8 and size errors: the stream is now invalid and,
         thanks to GENERATE_CLOSE_FRAMES_ON_ERROR, payload holds the close
         frame that tells the peer why. */
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


/**
 * Ends the TCP connection after our close frame went out: a FIN first,
 * then the peer's remaining bytes (its close frame, the rest of a frame
 * we failed on) are read and dropped until it closes too, or for at most
 * DRAIN_MILLISECONDS.  Closing with unread data would send a reset, which
 * can destroy our close frame before the peer reads it.
 */
static void
finish_connection (MHD_socket sock, char *buf, size_t buf_size)
{
  struct timespec start;
  struct timespec now;
  size_t drained = 0;

  (void) shutdown (sock, SHUT_WR);
  clock_gettime (CLOCK_MONOTONIC, &start);
  while (drained < DRAIN_MAX_BYTES)
  {
    long left;
    ssize_t got;

    clock_gettime (CLOCK_MONOTONIC, &now);
    left = DRAIN_MILLISECONDS - milliseconds_between (&start, &now);
    if ((left <= 0) || is_stopping ())
      break;
    /* Each wait is bounded by what is left of the drain time. */
    set_timeout (sock, SO_RCVTIMEO, left);
    got = recv (sock, buf, buf_size, 0);
    if ((got < 0) && (EINTR == errno))
      continue;
    if (got <= 0)
      break;
    drained += (size_t) got;
  }
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
  char *buf;
  int done = 0;
  /* Whether we sent a close frame and so owe the peer a clean end. */
  int closing = 0;

  buf = malloc (RECV_BUFFER_SIZE);
  if ((NULL == buf)
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_stream_init (
            &ws,
            MHD_WEBSOCKET_FLAG_SERVER | MHD_WEBSOCKET_FLAG_NO_FRAGMENTS
              | MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR,
            max_payload)))
    done = 1;
  if (! done && ('\0' != s->deflate[0])
      && (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_stream_enable_deflate (ws, s->deflate, -1, 0, 0)))
    done = 1;
  if (! done && (s->extra_len > 0))
    done = closing = process_input (s->sock, ws, s->extra, s->extra_len);
  while (! done)
  {
    ssize_t got = recv (s->sock, buf, RECV_BUFFER_SIZE, 0);

    if ((got < 0) && (EINTR == errno))
      continue;
    if ((got < 0) && ((EAGAIN == errno) || (EWOULDBLOCK == errno)))
    {
      /* SO_RCVTIMEO expired: the peer is silent for too long. */
      send_close (s->sock, ws, MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY,
                  "idle timeout", 12);
      closing = 1;
      break;
    }
    if (got <= 0)
    {
      /* The peer went away (or reset), or shutdown wakes us with 0. */
      if (is_stopping () && (NULL != ws))
        send_close (s->sock, ws, MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY,
                    "server shutting down", 20);
      break;
    }
    done = closing = process_input (s->sock, ws, buf, (size_t) got);
  }
  if (closing && (NULL != buf))
    finish_connection (s->sock, buf, RECV_BUFFER_SIZE);
  if (NULL != ws)
    MHD_websocket_stream_free (ws);
  free (buf);

  /* Unlist before closing: from now on nobody may touch the socket, which
     libmicrohttpd closes (and the number may be reused) after the call. */
  session_unlist (s);
  MHD_upgrade_action (s->urh, MHD_UPGRADE_ACTION_CLOSE);

  pthread_mutex_lock (&sessions_lock);
  sessions_open--;
  sessions_ended++;
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
  (void) req_cls;
  s = calloc (1, sizeof (*s));
  if (NULL == s)
  {
    MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
    return;
  }
  (void) negotiate_deflate (connection, s->deflate);
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
  /* Blocking I/O in our thread, bounded by timeouts so that a dead peer
     cannot hold the thread forever. */
  flags = fcntl (sock, F_GETFL);
  if (flags >= 0)
    (void) fcntl (sock, F_SETFL, flags & ~O_NONBLOCK);
  set_timeout (sock, SO_RCVTIMEO, IDLE_TIMEOUT * 1000L);
  set_timeout (sock, SO_SNDTIMEO, SEND_TIMEOUT * 1000L);

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
  /* libmicrohttpd adds "Connection: Upgrade" itself.  No subprotocol is
     negotiated; permessage-deflate is, when offered. */
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
  (void) cls;
  (void) url;
  (void) upload_data;
  (void) upload_data_size;
  (void) req_cls;
  /* Test clients use all kinds of paths, so every path upgrades.  Any of
     these headers shows the client means to upgrade; a request that has
     some but not all of them gets told what is wrong. */
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
  return send_text (connection, MHD_HTTP_UPGRADE_REQUIRED,
                    "This is a WebSocket echo server; connect with a "
                    "WebSocket client.\n",
                    MHD_HTTP_HEADER_UPGRADE, "websocket");
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
           "usage: %s [-m MAX_PAYLOAD_BYTES] [--no-deflate] [PORT]\n"
           "Echoes WebSocket messages on ws://127.0.0.1:PORT/ "
           "(default port %d, 0 for any free port).\n"
           "  -m N  largest message accepted, in bytes "
           "(default %lu, 0 for no limit)\n"
           "  --no-deflate  decline permessage-deflate compression\n",
           argv0, DEFAULT_PORT, (unsigned long) DEFAULT_MAX_PAYLOAD);
}


/**
 * Parses a decimal number made of digits only.
 *
 * @return 0 on success, -1 when @a text is not such a number or above @a max
 */
static int
parse_number (const char *text, unsigned long long max,
              unsigned long long *value)
{
  char *end;

  if ((text[0] < '0') || (text[0] > '9'))
    return -1;
  errno = 0;
  *value = strtoull (text, &end, 10);
  if (('\0' != *end) || (0 != errno) || (*value > max))
    return -1;
  return 0;
}


int
main (int argc, char **argv)
{
  unsigned long long port = DEFAULT_PORT;
  unsigned long long max = DEFAULT_MAX_PAYLOAD;
  int have_port = 0;
  int i;
  struct sockaddr_in addr;
  struct MHD_Daemon *daemon;
  const union MHD_DaemonInfo *info;
  pthread_condattr_t cattr;
  sigset_t sigs;
  int sig;
  struct rlimit files;
  unsigned long trimmed_at = 0;

  for (i = 1; i < argc; i++)
  {
    if ((0 == strcmp (argv[i], "-h")) || (0 == strcmp (argv[i], "--help")))
    {
      usage (stdout, argv[0]);
      return EXIT_SUCCESS;
    }
    if (0 == strcmp (argv[i], "--no-deflate"))
    {
      use_deflate = 0;
      continue;
    }
    if (0 == strcmp (argv[i], "-m"))
    {
      /* The decoder refuses limits above 2^63 - 1. */
      if ((i + 1 >= argc)
          || (0 != parse_number (argv[i + 1], 0x7FFFFFFFFFFFFFFFULL, &max))
          || (max > (size_t) -1))
      {
        usage (stderr, argv[0]);
        return EXIT_FAILURE;
      }
      i++;
      continue;
    }
    if (have_port || (0 != parse_number (argv[i], 65535, &port)))
    {
      usage (stderr, argv[0]);
      return EXIT_FAILURE;
    }
    have_port = 1;
  }
  max_payload = (size_t) max;

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

  if (0 == getrlimit (RLIMIT_NOFILE, &files))
  {
    files.rlim_cur = files.rlim_max;
    (void) setrlimit (RLIMIT_NOFILE, &files);
  }
  memset (&addr, 0, sizeof (addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons ((uint16_t) port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  daemon = MHD_start_daemon (
    MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG,
    (uint16_t) port, NULL, NULL, &on_request, NULL, MHD_OPTION_SOCK_ADDR,
    (struct sockaddr *) &addr, MHD_OPTION_CONNECTION_TIMEOUT,
    (unsigned int) HTTP_TIMEOUT, MHD_OPTION_CONNECTION_LIMIT,
    (unsigned int) MAX_CONNECTIONS, MHD_OPTION_END);
  if (NULL == daemon)
  {
    fprintf (stderr, "Could not start the server on 127.0.0.1:%llu\n", port);
    return EXIT_FAILURE;
  }
  info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
  if ((NULL != info) && (0 != info->port))
    port = info->port;
  printf ("Serving on http://127.0.0.1:%llu/\n", port);
  fflush (stdout);

  /* Wait for SIGINT or SIGTERM.  Once a second, if sessions ended, hand
     the heap pages they freed back to the system: glibc keeps them in
     the per-thread arenas otherwise, so a burst of thousands of
     connections would leave the server tens of MiB larger for good. */
  for (;;)
  {
    struct timespec second = { 1, 0 };
    unsigned long ended;

    sig = sigtimedwait (&sigs, NULL, &second);
    if ((SIGINT == sig) || (SIGTERM == sig))
      break;
    pthread_mutex_lock (&sessions_lock);
    ended = sessions_ended;
    pthread_mutex_unlock (&sessions_lock);
    if (ended != trimmed_at)
    {
      trimmed_at = ended;
      (void) malloc_trim (0);
    }
  }

  /* Close the WebSockets first: MHD_stop_daemon() would otherwise close
     their sockets under the feet of the session threads. */
  pthread_mutex_lock (&sessions_lock);
  stopping = 1;
  pthread_mutex_unlock (&sessions_lock);
  wake_sessions (SHUT_RD);
  if (0 != wait_for_sessions (3))
  {
    /* A peer that does not read blocks its thread in send(). */
    wake_sessions (SHUT_RDWR);
    if (0 != wait_for_sessions (2))
      fprintf (stderr, "Some WebSocket connections did not end in time\n");
  }
  MHD_stop_daemon (daemon);
  return EXIT_SUCCESS;
}
