#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <microhttpd_ws.h>

static struct MHD_WebSocketServer *ws;

static void /* in a loop thread: echo each message */
on_message (void *cls, struct MHD_WebSocketSession *s,
            enum MHD_WEBSOCKET_STATUS type, const char *data, size_t len)
{
  (void) cls;
  if (MHD_WEBSOCKET_STATUS_TEXT_FRAME == type)
    MHD_websocket_session_send_text (s, data, len);
  else if (MHD_WEBSOCKET_STATUS_BINARY_FRAME == type)
    MHD_websocket_session_send_binary (s, data, len);
}

static enum MHD_Result /* in libmicrohttpd's thread: 101, or 400 */
on_request (void *cls, struct MHD_Connection *c, const char *url,
            const char *method, const char *version, const char *body,
            size_t *body_size, void **req_cls)
{
  (void) cls, (void) url, (void) body, (void) body_size, (void) req_cls;
  return (enum MHD_Result) MHD_websocket_server_upgrade (ws, c, method, version,
                                                         NULL);
}

int
main (int argc, char **argv)
{
  struct MHD_WebSocketSessionConfig *cfg =
    MHD_websocket_session_config_create ();
  struct sockaddr_in addr = { .sin_family = AF_INET };
  struct MHD_Daemon *d;
  sigset_t stop;
  int sig;

  addr.sin_port = htons ((uint16_t) (argc > 1 ? atoi (argv[1]) : 8080));
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  sigemptyset (&stop); /* blocked in every thread; sigwait() below */
  sigaddset (&stop, SIGINT);
  sigaddset (&stop, SIGTERM);
  pthread_sigmask (SIG_BLOCK, &stop, NULL);
  MHD_websocket_session_config_set_callbacks (cfg, &on_message, NULL);
  MHD_websocket_session_config_set (
    cfg, MHD_WEBSOCKET_SESSION_OPTION_IDLE_TIMEOUT_MS, 60000);
  MHD_websocket_server_create (&ws, cfg); /* one loop thread per core */
  MHD_websocket_session_config_free (cfg);
  MHD_websocket_server_start (ws);
  d = MHD_start_daemon (MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_UPGRADE, 0,
                        NULL, NULL, &on_request, NULL, MHD_OPTION_SOCK_ADDR,
                        (struct sockaddr *) &addr, MHD_OPTION_END);
  if (NULL == d)
    return 1;
  printf ("Serving on http://127.0.0.1:%u/\n",
          MHD_get_daemon_info (d, MHD_DAEMON_INFO_BIND_PORT)->port);
  fflush (stdout);
  sigwait (&stop, &sig);
  MHD_websocket_server_stop (ws, "server stopping", 2000); /* 1001s */
  MHD_stop_daemon (d);
  MHD_websocket_server_free (ws);
  return 0;
}
