/*
  echo_server.c -- the manual's examples put together: a WebSocket echo
  server on 127.0.0.1.  Usage: echo_server [PORT]  (0: any free port)
*/
#include "ex.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

int
main (int argc, char **argv)
{
  struct sockaddr_in addr;
  struct MHD_Daemon *daemon;
  const union MHD_DaemonInfo *info;
  unsigned int port = (argc > 1) ? (unsigned int) atoi (argv[1]) : 8080;
  sigset_t stop;
  int sig;

  /* Blocked in every thread, taken by sigwait() below. */
  sigemptyset (&stop);
  sigaddset (&stop, SIGINT);
  sigaddset (&stop, SIGTERM);
  pthread_sigmask (SIG_BLOCK, &stop, NULL);

  memset (&addr, 0, sizeof (addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons ((uint16_t) port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  /* MHD_ALLOW_UPGRADE is what lets a response switch protocols. */
  daemon = MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD
                               | MHD_USE_THREAD_PER_CONNECTION
                               | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG,
                             (uint16_t) port, NULL, NULL, &ex_access_handler,
                             NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_END);
  if (NULL == daemon)
    return EXIT_FAILURE;
  info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
  printf ("Serving on http://127.0.0.1:%u/\n",
          (NULL != info) ? (unsigned int) info->port : port);
  fflush (stdout);

  while (0 != sigwait (&stop, &sig))
    ;
  /* Sessions end when their clients leave; wait a little for them. */
  if (0 != ex_wait_for_sessions (5))
    fprintf (stderr, "some sessions are still open\n");
  MHD_stop_daemon (daemon);
  return EXIT_SUCCESS;
}
