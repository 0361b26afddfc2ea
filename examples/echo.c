/*
  echo.c -- a WebSocket echo server for conformance and load tests, on
  GNU libmicrohttpd and libmicrohttpd_ws's loop layer
  (MHD_websocket_server_*): libmicrohttpd's epoll thread does HTTP, and
  each upgraded connection is served by one of N loop threads.

  Every text message comes back as text and every binary message as
  binary, whole (fragments are reassembled first).  The session answers
  pings with pongs of the same payload, ignores unsolicited pongs and
  answers a close frame with a close frame (RFC 6455 5.5.1); after a
  protocol, UTF-8 or size error it sends the decoder's close frame (1002,
  1007 or 1009), shuts down our side of the stream, drops what the peer
  still sends for a short while and then closes, so that the peer sees
  the close frame and a FIN, not a reset.  Every wait is bounded: a peer
  silent for ECHO_IDLE_TIMEOUT seconds (default 60) gets a 1001 close,
  one that does not finish the closing handshake is cut off after 2
  seconds, an HTTP request must be complete within 10 seconds.  A client
  that sends but does not read is not read either once 256 KiB of
  answers wait for it (backpressure).  ECHO_PING_INTERVAL (seconds,
  default none) makes it ping silent peers.

  Usage: echo [-m MAX_PAYLOAD_BYTES] [-t THREADS] [--cert FILE --key FILE]
              [--no-deflate] [PORT]
  The default port is 8080 (0 picks a free one), the default maximum
  message size 16 MiB (0 means no limit), one loop thread per CPU; with
  --cert and --key it serves https:// and wss://.  It listens on
  127.0.0.1, upgrades on any path and stops on SIGINT or SIGTERM; its
  first line on stdout is "Serving on http://127.0.0.1:PORT/" (https with
  TLS), its second "libmicrohttpd VERSION", the version loaded at run
  time.  The rest of the example servers' plumbing (options, daemon,
  TLS files, signals) is in common/daemon.c.
*/

#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <microhttpd_ws.h>

#include "common/daemon.h"

#define DEFAULT_PORT 8080

/* Large enough for the 16 MiB messages of conformance suites. */
#define DEFAULT_MAX_PAYLOAD ((size_t) 16 * 1024 * 1024)

/* A peer that sends nothing for this long is considered dead. */
#define IDLE_TIMEOUT 60

/* After our close frame, how long the peer has to answer and close. */
#define CLOSE_TIMEOUT_MS 2000

/* Pongs owed to a client before further pings go unanswered. */
#define MAX_PONGS 16384

/* Answers queued for a client above which it is not read. */
#define SOFT_BOUND ((size_t) 256 * 1024)


static struct MHD_WebSocketServer *server;
/* -m */
static unsigned long long max_payload = DEFAULT_MAX_PAYLOAD;


/**
 * Echoes one whole message; the session encodes it (compressing it when
 * that was agreed) and queues it.
 */
static void
on_message (void *cls, struct MHD_WebSocketSession *session,
            enum MHD_WEBSOCKET_STATUS type, const char *data, size_t len)
{
  enum MHD_WEBSOCKET_SEND_RESULT r;

  (void) cls;
  /* The decoder has validated the text, so it re-encodes cleanly. */
  if (MHD_WEBSOCKET_STATUS_TEXT_FRAME == type)
    r = MHD_websocket_session_send_text (session, data, len);
  else if (MHD_WEBSOCKET_STATUS_BINARY_FRAME == type)
    r = MHD_websocket_session_send_binary (session, data, len);
  else
    return; /* pings, pongs and closes: the session answered them */
  if (MHD_WEBSOCKET_SEND_MEMORY_ERROR == r)
    (void) MHD_websocket_session_close (
      session, MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION, NULL);
}


static void
on_end (void *cls, struct MHD_WebSocketSession *session,
        enum MHD_WEBSOCKET_END_REASON reason, unsigned short code)
{
  (void) cls;
  (void) session;
  (void) reason;
  (void) code;
  ex_note_end ();
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
     the handshake headers shows the client means to upgrade; a request
     that has some but not all of them gets told what is wrong. */
  if (ex_wants_upgrade (connection))
    return ex_upgrade (server, connection, method, version, NULL);
  return ex_http_text (connection, MHD_HTTP_UPGRADE_REQUIRED,
                       "This is a WebSocket echo server; connect with a "
                       "WebSocket client.\n",
                       MHD_HTTP_HEADER_UPGRADE, "websocket");
}


static void
usage (FILE *out, const char *argv0)
{
  fprintf (out,
           "usage: %s [-m MAX_PAYLOAD_BYTES] [-t N] [--cert FILE --key FILE] "
           "[--no-deflate] [PORT]\n"
           "Echoes WebSocket messages on ws://127.0.0.1:PORT/ "
           "(default port %d, 0 for any free port).\n"
           "  -m N         largest message accepted, in bytes "
           "(default %lu, 0 for no limit)\n%s",
           argv0, DEFAULT_PORT, (unsigned long) DEFAULT_MAX_PAYLOAD,
           ex_options_usage);
}


/* -m N, as an ExArgCallback. */
static int
own_option (int argc, char **argv, int *i)
{
  if (0 != strcmp (argv[*i], "-m"))
    return 0;
  /* The decoder refuses limits above 2^63 - 1. */
  if ((*i + 1 >= argc)
      || (0
          != ex_parse_number (argv[*i + 1], 0x7FFFFFFFFFFFFFFFULL,
                              &max_payload))
      || (max_payload > (size_t) -1))
    return -1;
  *i += 1;
  return 1;
}


int
main (int argc, char **argv)
{
  unsigned int port = DEFAULT_PORT;
  struct ExOptions opts;
  unsigned long long hard_bound;
  struct MHD_Daemon *daemon;
  int status = ex_parse_args (argc, argv, &own_option, &usage, &opts, &port);

  if (status >= 0)
    return status;
  /* A client's queue grows only by answers to what it sent, and it is
     not read above the soft bound: at most one read's answers and one
     whole message more.  Above that something is wrong. */
  if ((0 == max_payload) || (max_payload > SIZE_MAX / 2 - 2 * SOFT_BOUND))
    hard_bound = SIZE_MAX;
  else
    hard_bound = 2 * SOFT_BOUND + 2 * (size_t) max_payload;
  {
    const struct ExSetting settings[] = {
      { MHD_WEBSOCKET_SESSION_OPTION_SOFT_BOUND, SOFT_BOUND },
      { MHD_WEBSOCKET_SESSION_OPTION_HARD_BOUND, hard_bound },
      { MHD_WEBSOCKET_SESSION_OPTION_IDLE_TIMEOUT_MS,
        1000ULL * ex_env_seconds ("ECHO_IDLE_TIMEOUT", 0, IDLE_TIMEOUT) },
      { MHD_WEBSOCKET_SESSION_OPTION_PING_INTERVAL_MS,
        1000ULL * ex_env_seconds ("ECHO_PING_INTERVAL", 0, 0) },
      { MHD_WEBSOCKET_SESSION_OPTION_CLOSE_TIMEOUT_MS, CLOSE_TIMEOUT_MS },
      { MHD_WEBSOCKET_SESSION_OPTION_ECHO_CLOSE_REASON, 1 },
      /* A conformance server answers every ping, also a read full of
         them (64 KiB of empty pings is 10,923). */
      { MHD_WEBSOCKET_SESSION_OPTION_MAX_PONGS_QUEUED, MAX_PONGS }
    };

    /* Compression as the client offers it, context kept both ways. */
    server = ex_server_create (settings, sizeof (settings) / sizeof (*settings),
                               &on_message, &on_end, &opts, max_payload);
  }
  if (NULL == server)
    return EXIT_FAILURE;
  daemon = ex_start (server, &opts, port, &on_request, NULL);
  if (NULL == daemon)
    return EXIT_FAILURE;
  (void) ex_wait_signal ();
  ex_stop (server, daemon, "server shutting down", NULL, NULL);
  return EXIT_SUCCESS;
}
