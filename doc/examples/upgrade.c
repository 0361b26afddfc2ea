/*
  upgrade.c -- the HTTP side: the access handler accepts a WebSocket
  handshake with 101 Switching Protocols, and the upgrade handler gives
  the upgraded socket to a thread that runs the receive loop.
*/
#include "ex.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The largest message a client may make us buffer. */
#define EX_MAX_PAYLOAD (1024 * 1024)

/* Sessions still running: the daemon must outlive them. */
static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sessions_done = PTHREAD_COND_INITIALIZER;
static unsigned int sessions;

struct ex_session
{
  struct ex_conn conn;
  struct MHD_UpgradeResponseHandle *urh;
  char *extra;
  size_t extra_len;
};

static const char *
header (struct MHD_Connection *connection, const char *name)
{
  return MHD_lookup_connection_value (connection, MHD_HEADER_KIND, name);
}

static enum MHD_Result
refuse (struct MHD_Connection *connection)
{
  static const char text[] = "This URL speaks WebSocket (version 13).\n";
  struct MHD_Response *response;
  enum MHD_Result ret;

  response = MHD_create_response_from_buffer (sizeof (text) - 1, (void *) text,
                                              MHD_RESPMEM_PERSISTENT);
  if (NULL == response)
    return MHD_NO;
  MHD_add_response_header (response, MHD_HTTP_HEADER_SEC_WEBSOCKET_VERSION,
                           "13");
  ret = MHD_queue_response (connection, MHD_HTTP_BAD_REQUEST, response);
  MHD_destroy_response (response);
  return ret;
}

enum MHD_Result
ex_access_handler (void *cls, struct MHD_Connection *connection,
                   const char *url, const char *method, const char *version,
                   const char *upload_data, size_t *upload_data_size,
                   void **req_cls)
{
  char accept[29];
  struct MHD_Response *response;
  enum MHD_Result ret;

  (void) cls;
  (void) url;
  (void) upload_data;
  (void) upload_data_size;
  (void) req_cls;
  /* A NULL header (not sent) fails its check too. */
  if ((0 != strcmp (method, MHD_HTTP_METHOD_GET))
      || (MHD_WEBSOCKET_STATUS_OK != MHD_websocket_check_http_version (version))
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_check_connection_header (
            header (connection, MHD_HTTP_HEADER_CONNECTION)))
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_check_upgrade_header (
            header (connection, MHD_HTTP_HEADER_UPGRADE)))
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_check_version_header (
            header (connection, MHD_HTTP_HEADER_SEC_WEBSOCKET_VERSION)))
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_create_accept_header (
            header (connection, MHD_HTTP_HEADER_SEC_WEBSOCKET_KEY), accept)))
    return refuse (connection);

  response = MHD_create_response_for_upgrade (&ex_upgrade_handler, NULL);
  if (NULL == response)
    return MHD_NO;
  /* libmicrohttpd adds "Connection: Upgrade" by itself. */
  if ((MHD_YES
       != MHD_add_response_header (response, MHD_HTTP_HEADER_UPGRADE,
                                   "websocket"))
      || (MHD_YES
          != MHD_add_response_header (
            response, MHD_HTTP_HEADER_SEC_WEBSOCKET_ACCEPT, accept)))
  {
    MHD_destroy_response (response);
    return MHD_NO;
  }
  ret = MHD_queue_response (connection, MHD_HTTP_SWITCHING_PROTOCOLS, response);
  MHD_destroy_response (response);
  return ret;
}

static void *
session_main (void *cls)
{
  struct ex_session *s = cls;

  ex_receive_loop (&s->conn, s->extra, s->extra_len);
  ex_conn_destroy (&s->conn);
  /* Gives the socket back: libmicrohttpd closes it. */
  MHD_upgrade_action (s->urh, MHD_UPGRADE_ACTION_CLOSE);
  free (s->extra);
  free (s);
  pthread_mutex_lock (&sessions_lock);
  sessions--;
  pthread_cond_broadcast (&sessions_done);
  pthread_mutex_unlock (&sessions_lock);
  return NULL;
}

void
ex_upgrade_handler (void *cls, struct MHD_Connection *connection, void *req_cls,
                    const char *extra_in, size_t extra_in_size, MHD_socket sock,
                    struct MHD_UpgradeResponseHandle *urh)
{
  struct MHD_WebSocketStream *ws;
  struct ex_session *s;
  pthread_t thread;
  int flags;

  (void) cls;
  (void) connection;
  (void) req_cls;
  s = calloc (1, sizeof (*s));
  /* extra_in is only valid during this call. */
  if ((NULL != s) && (0 != extra_in_size)
      && (NULL != (s->extra = malloc (extra_in_size))))
  {
    memcpy (s->extra, extra_in, extra_in_size);
    s->extra_len = extra_in_size;
  }
  if ((NULL == s) || (s->extra_len != extra_in_size)
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_stream_init (
            &ws,
            MHD_WEBSOCKET_FLAG_SERVER
              | MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR,
            EX_MAX_PAYLOAD)))
    goto fail;
  if (0 != ex_conn_init (&s->conn, sock, ws))
  {
    MHD_websocket_stream_free (ws);
    goto fail;
  }
  /* The socket may come non-blocking; the thread wants blocking I/O. */
  flags = fcntl (sock, F_GETFL);
  if (flags >= 0)
    (void) fcntl (sock, F_SETFL, flags & ~O_NONBLOCK);
  s->urh = urh;
  pthread_mutex_lock (&sessions_lock);
  sessions++;
  pthread_mutex_unlock (&sessions_lock);
  if (0 == pthread_create (&thread, NULL, &session_main, s))
  {
    pthread_detach (thread);
    return;
  }
  pthread_mutex_lock (&sessions_lock);
  sessions--;
  pthread_mutex_unlock (&sessions_lock);
  ex_conn_destroy (&s->conn);
fail:
  if (NULL != s)
    free (s->extra);
  free (s);
  MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
}

/* Call before MHD_stop_daemon(), once clients were asked to leave.
   Returns how many sessions are still running after @a seconds. */
unsigned int
ex_wait_for_sessions (unsigned int seconds)
{
  struct timespec deadline;
  unsigned int left;

  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += (time_t) seconds;
  pthread_mutex_lock (&sessions_lock);
  while (
    (0 != sessions)
    && (0
        == pthread_cond_timedwait (&sessions_done, &sessions_lock, &deadline)))
    ;
  left = sessions;
  pthread_mutex_unlock (&sessions_lock);
  return left;
}
