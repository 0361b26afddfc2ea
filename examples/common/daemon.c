/*
  daemon.c -- what the example servers share besides their application
  logic; daemon.h says what each part does.
*/

#define _GNU_SOURCE

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "daemon.h"

/* Connections libmicrohttpd serves at once (HTTP and upgraded). */
#define MAX_CONNECTIONS 60000
/* An HTTP request must be complete in this many seconds. */
#define HTTP_TIMEOUT 10

/* Connections ended so far (ex_note_end()). */
static unsigned long ended;


/* ---------------------------------------------------------------- HTTP */

/* Queues @a text, a static string, as a @a type answer. */
static enum MHD_Result
http_answer (struct MHD_Connection *connection, unsigned int status,
             const char *type, const char *text, const char *header,
             const char *value)
{
  struct MHD_Response *response;
  enum MHD_Result ret;

  response = MHD_create_response_from_buffer (strlen (text), (void *) text,
                                              MHD_RESPMEM_PERSISTENT);
  if (NULL == response)
    return MHD_NO;
  MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  if (NULL != header)
    MHD_add_response_header (response, header, value);
  ret = MHD_queue_response (connection, status, response);
  MHD_destroy_response (response);
  return ret;
}


enum MHD_Result
ex_http_text (struct MHD_Connection *connection, unsigned int status,
              const char *text, const char *header, const char *value)
{
  return http_answer (connection, status, "text/plain; charset=utf-8", text,
                      header, value);
}


enum MHD_Result
ex_http_html (struct MHD_Connection *connection, const char *html)
{
  return http_answer (connection, MHD_HTTP_OK, "text/html; charset=utf-8", html,
                      NULL, NULL);
}


/* MHD_get_connection_values_n() callback: adds a header's size as sent
   ("Name: value" and CRLF). */
static enum MHD_Result
add_header_size (void *cls, enum MHD_ValueKind kind, const char *key,
                 size_t key_size, const char *value, size_t value_size)
{
  size_t *bytes = cls;

  (void) kind;
  (void) key;
  (void) value;
  *bytes += key_size + 4 + value_size;
  return MHD_YES;
}


/* Whether the handshake's headers are too large: see ex_upgrade(). */
static int
handshake_too_large (struct MHD_Connection *connection)
{
  size_t bytes = 0;

  /* The pool of a TLS connection is larger on libmicrohttpd after 0.9.75
     (ex_tls_pool_size()), which would let it take far larger requests
     where every other connection answers 431 from about 1,200 bytes; the
     room is for the relay buffers, so the handshake is held to the same
     bound as everywhere else. */
  (void) MHD_get_connection_values_n (connection, MHD_HEADER_KIND,
                                      &add_header_size, &bytes);
  return bytes > EX_HTTP_POOL_SIZE / 2;
}


enum MHD_Result
ex_upgrade (struct MHD_WebSocketServer *server,
            struct MHD_Connection *connection, const char *method,
            const char *version, void *(*make_user) (struct MHD_Connection *) )
{
  void *user = NULL;

  if (handshake_too_large (connection))
    return ex_http_text (connection, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                         "The handshake's headers are too large.\n", NULL,
                         NULL);
  if ((NULL != make_user) && (NULL == (user = make_user (connection))))
    return MHD_NO;
  return (enum MHD_Result) MHD_websocket_server_upgrade (server, connection,
                                                         method, version, user);
}


int
ex_wants_upgrade (struct MHD_Connection *connection)
{
  return (NULL
          != MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                          MHD_HTTP_HEADER_UPGRADE))
         || (NULL
             != MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                             "Sec-WebSocket-Key"))
         || (NULL
             != MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                             "Sec-WebSocket-Version"));
}


/* ---------------------------------------------------------------- daemon */

int
ex_parse_number (const char *text, unsigned long long max,
                 unsigned long long *value)
{
  char *end;

  /* strtoull() would take leading space, a sign and wrap "-1" around. */
  if ((text[0] < '0') || (text[0] > '9'))
    return -1;
  errno = 0;
  *value = strtoull (text, &end, 10);
  if (('\0' != *end) || (0 != errno) || (*value > max))
    return -1;
  return 0;
}


int
ex_parse_host_port (const char *arg, char *host, size_t host_size,
                    unsigned int *port)
{
  const char *colon = strrchr (arg, ':');
  unsigned long long p;

  if ((NULL == colon) || (colon == arg) || ((size_t) (colon - arg) >= host_size)
      || (0 != ex_parse_number (colon + 1, 65535, &p)) || (0 == p))
    return -1;
  memcpy (host, arg, (size_t) (colon - arg));
  host[colon - arg] = '\0';
  *port = (unsigned int) p;
  return 0;
}


unsigned int
ex_env_seconds (const char *name, unsigned int min, unsigned int fallback)
{
  const char *s = getenv (name);
  unsigned long long v;

  if ((NULL == s) || ('\0' == *s))
    return fallback;
  if ((0 != ex_parse_number (s, 86400, &v)) || (v < min))
  {
    fprintf (stderr, "Ignoring %s=%s: not a number of seconds\n", name, s);
    return fallback;
  }
  return (unsigned int) v;
}


const char ex_options_usage[] =
  "  -t N         event loop threads (default: one per CPU)\n"
  "  --cert FILE  PEM certificate: serve https:// and wss:// (with --key)\n"
  "  --key FILE   PEM private key of the certificate\n"
  "  --no-deflate decline permessage-deflate compression\n"
  "Environment: WS_LOOP_BACKEND=poll serves the WebSockets with the\n"
  "  loop layer's poll(2) backend instead of epoll (tests).\n";


/* Takes a shared option at argv[*i]: as an ExArgCallback. */
static int
parse_option (int argc, char **argv, int *i, struct ExOptions *opts)
{
  const char *arg = argv[*i];

  if (0 == strcmp (arg, "--no-deflate"))
  {
    opts->no_deflate = 1;
    return 1;
  }
  if ((0 != strcmp (arg, "-t")) && (0 != strcmp (arg, "--cert"))
      && (0 != strcmp (arg, "--key")))
    return 0;
  if (*i + 1 >= argc)
    return -1;
  if (0 == strcmp (arg, "-t"))
  {
    unsigned long long n;

    if ((0 != ex_parse_number (argv[*i + 1], 256, &n)) || (n < 1))
      return -1;
    opts->threads = (unsigned int) n;
  }
  else if (0 == strcmp (arg, "--cert"))
    opts->cert_file = argv[*i + 1];
  else
    opts->key_file = argv[*i + 1];
  *i += 1;
  return 1;
}


int
ex_parse_args (int argc, char **argv, ExArgCallback own, ExUsageCallback usage,
               struct ExOptions *opts, unsigned int *port)
{
  int have_port = 0;
  int i;

  memset (opts, 0, sizeof (*opts));
  for (i = 1; i < argc; i++)
  {
    unsigned long long n;
    int r = 0;

    if ((0 == strcmp (argv[i], "-h")) || (0 == strcmp (argv[i], "--help")))
    {
      usage (stdout, argv[0]);
      return EXIT_SUCCESS;
    }
    if (NULL != own)
      r = own (argc, argv, &i);
    if (0 == r)
      r = parse_option (argc, argv, &i, opts);
    if (r > 0)
      continue;
    if (-2 == r)
      return EXIT_FAILURE;
    if ((r < 0) || have_port || (0 != ex_parse_number (argv[i], 65535, &n)))
    {
      usage (stderr, argv[0]);
      return EXIT_FAILURE;
    }
    *port = (unsigned int) n;
    have_port = 1;
  }
  return -1;
}


/* Reads a whole PEM file; NULL (message on stderr) on failure. */
static char *
read_file (const char *path)
{
  FILE *f = fopen (path, "rb");
  char *buf = NULL;
  size_t len = 0;
  size_t cap = 0;

  if (NULL == f)
  {
    fprintf (stderr, "Cannot open %s: %s\n", path, strerror (errno));
    return NULL;
  }
  for (;;)
  {
    size_t got;

    if (cap - len < 4096)
    {
      char *bigger;

      if (cap > 1024 * 1024)
        break; /* no PEM file is this large */
      bigger = realloc (buf, cap + 8192 + 1);
      if (NULL == bigger)
        break;
      buf = bigger;
      cap += 8192;
    }
    got = fread (buf + len, 1, cap - len, f);
    len += got;
    if (0 == got)
    {
      fclose (f);
      buf[len] = '\0';
      return buf;
    }
  }
  fclose (f);
  free (buf);
  fprintf (stderr, "Cannot read %s\n", path);
  return NULL;
}


size_t
ex_tls_pool_size (void)
{
  /* libmicrohttpd 0.9.75 builds the response header in a write buffer
     that takes all the pool left, and does not give it back before the
     upgrade: the relay of an upgraded TLS connection finds no free pool
     and falls back to its 8-byte emergency buffer, so it sends 4-byte
     TLS records whatever the pool's size (a 1 MiB echo: 262,000 records,
     seconds).  1.0 frees that buffer first and relays through the rest
     of the pool.  So the large pool only where it helps; the runtime
     version counts, not the one built against. */
  const char *v = MHD_get_version ();

  if ((NULL != v) && (v[0] >= '1') && (v[0] <= '9') && ('.' == v[1]))
    return EX_HTTPS_POOL_SIZE;
  return EX_HTTP_POOL_SIZE;
}


/* Starts libmicrohttpd: see ex_start(). */
static struct MHD_Daemon *
daemon_start (const struct ExOptions *opts, unsigned int port,
              MHD_AccessHandlerCallback handler, void *cls)
{
  struct sockaddr_in addr;
  struct MHD_Daemon *daemon;
  const union MHD_DaemonInfo *info;
  struct rlimit files;
  unsigned int flags =
    MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
  int tls = (NULL != opts->cert_file) || (NULL != opts->key_file);
  char *cert = NULL;
  char *key = NULL;
  /* With TLS the pool also holds libmicrohttpd's relay buffers of the
     upgraded connection: see ex_tls_pool_size(). */
  size_t pool = EX_HTTP_POOL_SIZE;
  const char *listen_on = getenv ("LISTEN_ADDRESS");

  if (tls)
  {
    if ((NULL == opts->cert_file) || (NULL == opts->key_file))
    {
      fprintf (stderr, "--cert and --key go together\n");
      return NULL;
    }
    if (MHD_YES != MHD_is_feature_supported (MHD_FEATURE_TLS))
    {
      fprintf (stderr, "This libmicrohttpd has no TLS support\n");
      return NULL;
    }
    cert = read_file (opts->cert_file);
    key = read_file (opts->key_file);
    if ((NULL == cert) || (NULL == key))
    {
      free (cert);
      free (key);
      return NULL;
    }
    flags |= MHD_USE_TLS;
    pool = ex_tls_pool_size ();
  }
  /* Every connection is a file descriptor (two with TLS). */
  if (0 == getrlimit (RLIMIT_NOFILE, &files))
  {
    files.rlim_cur = files.rlim_max;
    (void) setrlimit (RLIMIT_NOFILE, &files);
  }
  memset (&addr, 0, sizeof (addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons ((uint16_t) port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  /* LISTEN_ADDRESS: another IPv4 address, for servers that a load
     balancer on another machine reaches (the chat cluster). */
  if ((NULL != listen_on) && ('\0' != *listen_on)
      && (1 != inet_pton (AF_INET, listen_on, &addr.sin_addr)))
  {
    fprintf (stderr, "LISTEN_ADDRESS=%s is not an IPv4 address\n", listen_on);
    free (cert);
    free (key);
    return NULL;
  }
  if ((NULL == listen_on) || ('\0' == *listen_on))
    listen_on = "127.0.0.1";
  if (tls)
    daemon = MHD_start_daemon (
      flags, (uint16_t) port, NULL, NULL, handler, cls, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *) &addr, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned int) HTTP_TIMEOUT, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned int) MAX_CONNECTIONS, MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
      MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
      MHD_OPTION_END);
  else
    daemon = MHD_start_daemon (
      flags, (uint16_t) port, NULL, NULL, handler, cls, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *) &addr, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned int) HTTP_TIMEOUT, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned int) MAX_CONNECTIONS, MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
      MHD_OPTION_END);
  /* libmicrohttpd copied the PEM strings. */
  free (cert);
  free (key);
  if (NULL == daemon)
  {
    fprintf (stderr, "Could not start the server on %s:%u\n", listen_on, port);
    return NULL;
  }
  info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
  if ((NULL != info) && (0 != info->port))
    port = info->port;
  /* The second line names the libmicrohttpd loaded at run time: 0.9.75
     and 1.0.x share a soname, so only this shows which one serves. */
  printf ("Serving on %s://%s:%u/\nlibmicrohttpd %s\n", tls ? "https" : "http",
          listen_on, port, MHD_get_version ());
  fflush (stdout);
  return daemon;
}


static struct MHD_WebSocketSessionConfig *
session_config (const struct ExSetting *settings, size_t n,
                MHD_WebSocketMessageCallback message_cb,
                MHD_WebSocketEndCallback end_cb)
{
  struct MHD_WebSocketSessionConfig *cfg =
    MHD_websocket_session_config_create ();
  size_t i;

  if (NULL == cfg)
  {
    fprintf (stderr, "No memory for the session settings\n");
    return NULL;
  }
  for (i = 0; i < n; i++)
    if (MHD_WEBSOCKET_STATUS_OK
        != MHD_websocket_session_config_set (cfg, settings[i].option,
                                             settings[i].value))
    {
      fprintf (stderr, "Bad session setting %d = %llu\n",
               (int) settings[i].option, settings[i].value);
      MHD_websocket_session_config_free (cfg);
      return NULL;
    }
  MHD_websocket_session_config_set_callbacks (cfg, message_cb, end_cb);
  return cfg;
}


/* The loop threads, permessage-deflate and the backend of @a server. */
static int
server_setup (struct MHD_WebSocketServer *server, const struct ExOptions *opts)
{
  const char *backend = getenv ("WS_LOOP_BACKEND");
  int use_poll = 0;

  if ((NULL != backend) && ('\0' != *backend))
  {
    if (0 == strcmp (backend, "poll"))
      use_poll = 1;
    else if (0 != strcmp (backend, "epoll"))
    {
      fprintf (stderr, "WS_LOOP_BACKEND is poll or epoll, not %s\n", backend);
      return -1;
    }
  }
  if ((MHD_WEBSOCKET_STATUS_OK
       != MHD_websocket_server_set (server, MHD_WEBSOCKET_SERVER_OPTION_THREADS,
                                    opts->threads))
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_server_set (
            server, MHD_WEBSOCKET_SERVER_OPTION_DEFLATE, ! opts->no_deflate))
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_server_set (server,
                                       MHD_WEBSOCKET_SERVER_OPTION_USE_POLL,
                                       (unsigned long long) use_poll)))
  {
    fprintf (stderr, "Bad server options\n");
    return -1;
  }
  return 0;
}


struct MHD_WebSocketServer *
ex_server_create (const struct ExSetting *settings, size_t n,
                  MHD_WebSocketMessageCallback message_cb,
                  MHD_WebSocketEndCallback end_cb, const struct ExOptions *opts,
                  unsigned long long max_payload)
{
  struct MHD_WebSocketSessionConfig *cfg =
    session_config (settings, n, message_cb, end_cb);
  struct MHD_WebSocketServer *server = NULL;

  if (NULL == cfg)
    return NULL;
  /* The server keeps a copy of the settings. */
  if ((MHD_WEBSOCKET_STATUS_OK != MHD_websocket_server_create (&server, cfg))
      || (0 != server_setup (server, opts))
      || (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_server_set (
            server, MHD_WEBSOCKET_SERVER_OPTION_MAX_PAYLOAD, max_payload)))
  {
    MHD_websocket_server_free (server);
    server = NULL;
  }
  MHD_websocket_session_config_free (cfg);
  return server;
}


void
ex_note_end (void)
{
  __atomic_add_fetch (&ended, 1, __ATOMIC_RELAXED);
}


/* The signals that stop a server. */
static void
stop_signals (sigset_t *sigs)
{
  sigemptyset (sigs);
  sigaddset (sigs, SIGINT);
  sigaddset (sigs, SIGTERM);
}


struct MHD_Daemon *
ex_start (struct MHD_WebSocketServer *server, const struct ExOptions *opts,
          unsigned int port, MHD_AccessHandlerCallback handler, void *cls)
{
  sigset_t sigs;
  struct MHD_Daemon *daemon;

  /* Block the stop signals before any thread exists, so that every thread
     inherits the mask and main() alone receives them (ex_wait_signal()).
     A peer that went away must not kill the process on a write. */
  stop_signals (&sigs);
  pthread_sigmask (SIG_BLOCK, &sigs, NULL);
  signal (SIGPIPE, SIG_IGN);
  if (MHD_WEBSOCKET_STATUS_OK != MHD_websocket_server_start (server))
  {
    fprintf (stderr, "Could not start the loop threads\n");
    MHD_websocket_server_free (server);
    return NULL;
  }
  daemon = daemon_start (opts, port, handler, cls);
  if (NULL == daemon)
    MHD_websocket_server_free (server); /* stops the loops first */
  return daemon;
}


void
ex_stop (struct MHD_WebSocketServer *server, struct MHD_Daemon *daemon,
         const char *reason, void (*loops_stopped) (void *cls), void *cls)
{
  /* Close the WebSockets first: MHD_stop_daemon() would otherwise close
     their sockets under the feet of the loops.  Clients that do not
     answer the close frame are cut off. */
  MHD_websocket_server_stop (server, reason, (NULL != reason) ? 3000 : 0);
  if (NULL != loops_stopped)
    loops_stopped (cls);
  MHD_stop_daemon (daemon);
  MHD_websocket_server_free (server);
}


int
ex_wait_signal (void)
{
  sigset_t sigs;
  unsigned long trimmed_at = 0;

  /* Once a second, if connections ended, hand the heap pages they freed
     back to the system: glibc keeps them in the per-thread arenas
     otherwise, so a burst of thousands of connections would leave the
     server tens of MiB larger for good. */
  stop_signals (&sigs);
  for (;;)
  {
    struct timespec second = { 1, 0 };
    unsigned long now_ended;
    int sig = sigtimedwait (&sigs, NULL, &second);

    if ((SIGINT == sig) || (SIGTERM == sig))
      return sig;
    now_ended = __atomic_load_n (&ended, __ATOMIC_RELAXED);
    if (now_ended != trimmed_at)
    {
      trimmed_at = now_ended;
      (void) malloc_trim (0);
    }
  }
}
