/*
  daemon.h -- what the example servers share besides their application
  logic: the command line (shared options, numbers, usage), the
  environment's numbers, creating the loop layer's server
  (MHD_websocket_server_*), starting it and libmicrohttpd (with TLS from
  PEM files) with the stop signals blocked, the upgrade and short HTTP
  answers, main()'s wait for a stop signal and the stop.
*/
#ifndef EX_DAEMON_H
#define EX_DAEMON_H

#include <stddef.h>
#include <stdio.h>
#include <microhttpd.h>
#include <microhttpd_ws.h>

/** What the examples share on their command lines. */
struct ExOptions
{
  unsigned int threads;
  const char *cert_file;
  const char *key_file;
  /** --no-deflate: decline permessage-deflate. */
  int no_deflate;
};

/**
 * An example's own command-line options: looks at argv[*i].
 *
 * @return 1 when it took it (*i advanced past its value), 0 when it is
 *         not one of them, -1 on a bad value (the usage follows on
 *         stderr), -2 on a failure it has explained on stderr
 */
typedef int (*ExArgCallback) (int argc, char **argv, int *i);

/** Prints an example's usage, which includes ex_options_usage. */
typedef void (*ExUsageCallback) (FILE *out, const char *argv0);

/**
 * Parses the command line: -h or --help (the usage on stdout), the
 * example's own options (@a own, may be NULL), the shared ones (-t N,
 * --cert FILE, --key FILE, --no-deflate: into @a opts) and at most one
 * PORT (into @a port, which holds the default).  Anything else prints
 * the usage on stderr.
 *
 * @return -1 to go on, or the exit status main() should return
 */
int ex_parse_args (int argc, char **argv, ExArgCallback own,
                   ExUsageCallback usage, struct ExOptions *opts,
                   unsigned int *port);

/**
 * Parses a decimal number made of digits only (no sign, no space).
 *
 * @return 0 on success, -1 when @a text is not such a number or above @a max
 */
int ex_parse_number (const char *text, unsigned long long max,
                     unsigned long long *value);

/**
 * Splits HOST:PORT (PORT 1 to 65535) into @a host, a string of at most
 * @a host_size bytes with its NUL, and @a port.
 *
 * @return 0 on success, -1 if @a arg is not of that form
 */
int ex_parse_host_port (const char *arg, char *host, size_t host_size,
                        unsigned int *port);

/**
 * Reads a number of seconds, @a min to 86400, from the environment
 * variable @a name; @a fallback when it is unset or empty, and (with a
 * message on stderr) when it is not such a number.
 */
unsigned int ex_env_seconds (const char *name, unsigned int min,
                             unsigned int fallback);

/** The usage lines of the shared options. */
extern const char ex_options_usage[];

/** One session option and its value, for ex_server_create(). */
struct ExSetting
{
  enum MHD_WEBSOCKET_SESSION_OPTION option;
  unsigned long long value;
};

/**
 * Creates the WebSocket server: sessions with the @a n settings and the
 * two callbacks, messages up to @a max_payload bytes (0: no limit), the
 * loop threads and permessage-deflate of @a opts, and the poll(2)
 * backend when the environment has WS_LOOP_BACKEND=poll (the tests run
 * both backends).
 *
 * @return the server, or NULL (message on stderr, unless the library
 *         refused a value)
 */
struct MHD_WebSocketServer *
ex_server_create (const struct ExSetting *settings, size_t n,
                  MHD_WebSocketMessageCallback message_cb,
                  MHD_WebSocketEndCallback end_cb, const struct ExOptions *opts,
                  unsigned long long max_payload);

/**
 * Blocks SIGINT and SIGTERM (for ex_wait_signal()) and ignores SIGPIPE,
 * starts the loop threads of @a server, then libmicrohttpd on
 * 127.0.0.1:@a port (LISTEN_ADDRESS names another IPv4 address) with its
 * epoll thread and MHD_ALLOW_UPGRADE, with TLS when opts names a
 * certificate and key, and with a per-connection memory pool sized for a
 * WebSocket handshake.  Prints "Serving on http(s)://127.0.0.1:PORT/" on
 * success, then "libmicrohttpd VERSION", the version loaded at run time.
 *
 * @return the daemon, or NULL (message on stderr; @a server is freed)
 */
struct MHD_Daemon *ex_start (struct MHD_WebSocketServer *server,
                             const struct ExOptions *opts, unsigned int port,
                             MHD_AccessHandlerCallback handler, void *cls);

/**
 * main()'s wait for SIGINT or SIGTERM, trimming the heap once a second
 * when connections ended meanwhile.
 *
 * @return the signal that came
 */
int ex_wait_signal (void);

/**
 * Closes every WebSocket with 1001 and @a reason, giving the clients 3
 * seconds to answer (none with a NULL @a reason), calls @a loops_stopped
 * (if not NULL) once the loop threads have ended, then stops
 * libmicrohttpd and frees @a server.
 */
void ex_stop (struct MHD_WebSocketServer *server, struct MHD_Daemon *daemon,
              const char *reason, void (*loops_stopped) (void *cls), void *cls);

/** MHD_OPTION_CONNECTION_MEMORY_LIMIT: libmicrohttpd touches all of
    it, so it is most of an idle connection's memory.  3 KiB takes a
    handshake request of about 1,200 bytes (a browser's is 500-700
    without cookies). */
#define EX_HTTP_POOL_SIZE 3072

/** The pool of a TLS daemon (wss://) on libmicrohttpd 1.0 and later.
    Their relay of an upgraded TLS connection (a socketpair between our
    socket and the TLS session) takes its two buffers, halves of what is
    left, from the pool, and encrypts what it read of ours in one
    record: with 3 KiB that is about 1.3 KiB records.  36 KiB leaves an
    outgoing half of 16 KiB, TLS's largest record.  libmicrohttpd
    touches the whole pool, so an idle wss connection costs about 34 KB
    more (see ex_tls_pool_size() for 0.9.x, where this buys nothing). */
#define EX_HTTPS_POOL_SIZE (36 * 1024)

/**
 * The connection pool for a TLS daemon on the libmicrohttpd that is
 * loaded: EX_HTTPS_POOL_SIZE from version 1.0 on, EX_HTTP_POOL_SIZE
 * before (see daemon.c).
 */
size_t ex_tls_pool_size (void);

/** Whether the request carries any WebSocket handshake header. */
int ex_wants_upgrade (struct MHD_Connection *connection);

/**
 * Answers a request that carries a WebSocket handshake header (see
 * ex_wants_upgrade()): with 431 when its headers pass the bound that a
 * plain daemon's pool sets (EX_HTTP_POOL_SIZE / 2), which the larger
 * pool of a TLS daemon would not; otherwise with the upgrade to a
 * session of @a server, whose user pointer @a make_user (may be NULL)
 * makes from the request.  The pointer comes back through the end
 * callback whatever happens.
 *
 * @return the access handler's result
 */
enum MHD_Result ex_upgrade (struct MHD_WebSocketServer *server,
                            struct MHD_Connection *connection,
                            const char *method, const char *version,
                            void *(*make_user) (struct MHD_Connection *) );

/** Queues a short plain-text answer, with one optional extra header. */
enum MHD_Result ex_http_text (struct MHD_Connection *connection,
                              unsigned int status, const char *text,
                              const char *header, const char *value);

/** Queues a 200 answer of a static HTML page. */
enum MHD_Result ex_http_html (struct MHD_Connection *connection,
                              const char *html);

/** Counts an ended connection (from the end callback), so that
    ex_wait_signal() knows when to trim the heap. */
void ex_note_end (void);

#endif
