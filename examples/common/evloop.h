/*
  evloop.h -- event-driven WebSocket serving for the example servers.

  GNU libmicrohttpd does the HTTP part with its own polling thread; once
  a connection is upgraded, its socket is handed to one of N loop
  threads (one per core by default), each with its own epoll set.  A
  loop reads without blocking, feeds MHD_websocket_decode(), answers
  pings and close frames itself, and gives text and binary messages to
  the application's callbacks.  Writes go through a per-connection queue
  of reference-counted frames, so one encoded frame can be queued to
  many connections (chat broadcast) without copying.

  Threads: every callback runs in the loop thread that owns the
  connection, and a connection may only be used from that thread.  Work
  for another loop is posted to it with ev_loop_post().

  Memory is bounded per connection: above EvConfig.soft_bound queued
  bytes the connection is not read until its queue drains; above
  hard_bound it is closed with 1008 and its queue freed.
*/
#ifndef EVLOOP_H
#define EVLOOP_H

#include <signal.h>
#include <stddef.h>
#include <microhttpd.h>
#include <microhttpd_ws.h>

struct EvServer;
struct EvLoop;
struct EvConn;
struct EvWatch;
struct EvTimer;

/** Why a connection ended, given to EvConfig.on_close. */
enum EvEndReason
{
  /** The peer closed (close frame or EOF). */
  EV_END_PEER = 0,
  /** A protocol, UTF-8 or size error of the peer (1002, 1007, 1009). */
  EV_END_PROTOCOL,
  /** Silent for longer than the idle timeout (1001). */
  EV_END_IDLE,
  /** Its queue passed the hard bound: it does not read (1008). */
  EV_END_STALLED,
  /** The application closed it with ev_conn_close(). */
  EV_END_APP,
  /** The server is stopping (1001). */
  EV_END_SHUTDOWN,
  /** A socket error or a failed allocation. */
  EV_END_ERROR
};

struct EvConfig
{
  /** Loop threads; 0 for one per online CPU. */
  unsigned int threads;
  /** Largest message accepted (0: no limit). */
  size_t max_payload;
  /** Queued output bytes above which a connection is not read. */
  size_t soft_bound;
  /** Queued output bytes above which a connection is closed with 1008. */
  size_t hard_bound;
  /** Milliseconds of silence before a 1001 close; 0 for none. */
  unsigned int idle_timeout_ms;
  /** Milliseconds of silence before a ping; 0 for no pings. */
  unsigned int ping_interval_ms;
  /** After our close frame: how long the peer has to finish. */
  unsigned int close_timeout_ms;
  /** The answer to an empty close frame: 0 for an empty close frame,
      otherwise this code. */
  unsigned short empty_close_code;
  /** Whether a close frame's reason text is sent back with its code. */
  int close_echo_reason;
  /** Reason text of the 1001 sent to every connection at shutdown. */
  const char *shutdown_reason;
  /** Accept permessage-deflate (RFC 7692) when a client offers it. */
  int deflate;
  /** MHD_WEBSOCKET_DEFLATE_FLAG values asked of every client that
      compresses.  With SERVER_NO_CONTEXT_TAKEOVER each message the
      server sends is compressed on its own, so ev_encode_shared_text()
      can compress a broadcast once for all such connections. */
  int deflate_flags;

  /** Called in libmicrohttpd's thread when a request is upgraded, while
      @a connection is still readable (for its URL arguments); returns
      the connection's user pointer (may be NULL).  Optional. */
  void *(*on_upgrade) (void *cls, struct MHD_Connection *connection);
  /** The connection is ready; in its loop thread.  Optional. */
  void (*on_open) (struct EvConn *c);
  /** A whole text (binary == 0) or binary message.  @a data is freed
      after the call returns. */
  void (*on_message) (struct EvConn *c, int binary, const char *data,
                      size_t len);
  /** The connection is gone; its user pointer is the application's to
      free.  ev_conn_stream() is still usable for encoding. */
  void (*on_close) (struct EvConn *c, enum EvEndReason why);
  /** Frees the user pointer of a connection that never opened (the
      server stopped first).  Optional. */
  void (*free_user) (void *cls, void *user);
  /** In each loop's thread as it starts, before any connection: the
      place to set up per-loop state (watches, timers).  Optional. */
  void (*on_loop_start) (struct EvLoop *loop, void *cls);
  /** In each loop's thread when the server begins to stop, before its
      connections are closed: the place to free that state.  Optional. */
  void (*on_loop_stop) (struct EvLoop *loop, void *cls);
  void *cls;
};


/* ---------------------------------------------------------------- server */

/**
 * Starts the loop threads.
 *
 * @return the server, or NULL (message on stderr)
 */
struct EvServer *ev_server_start (const struct EvConfig *cfg);

/**
 * Closes every connection with 1001 (shutdown_reason), waits up to
 * @a wait_ms for the peers to finish, cuts off the rest, and joins the
 * loop threads.  Every upgrade handle has been closed on return, so
 * MHD_stop_daemon() may follow.
 */
void ev_server_stop (struct EvServer *srv, unsigned int wait_ms);

/** Frees the server after ev_server_stop(). */
void ev_server_free (struct EvServer *srv);

unsigned int ev_server_loop_count (const struct EvServer *srv);

struct EvLoop *ev_server_loop (struct EvServer *srv, unsigned int index);

/** Connections ended so far (all loops); main() may trim the heap when
    it changes. */
unsigned long ev_server_ended (struct EvServer *srv);

/**
 * main()'s wait for SIGINT or SIGTERM (blocked in @a sigs), trimming the
 * heap once a second when connections ended meanwhile.
 *
 * @return the signal that came
 */
int ev_server_wait_signal (struct EvServer *srv, const sigset_t *sigs);

/**
 * Answers a WebSocket opening handshake (RFC 6455 4.2.1): 101 and hands
 * the connection to a loop once upgraded, or 400/426 with the reason.
 * For the access handler of the daemon.
 */
enum MHD_Result ev_answer_upgrade (struct EvServer *srv,
                                   struct MHD_Connection *connection,
                                   const char *method, const char *version);

/** Whether the request carries any WebSocket handshake header. */
int ev_wants_upgrade (struct MHD_Connection *connection);

/** Queues a short plain-text answer, with one optional extra header. */
enum MHD_Result ev_http_text (struct MHD_Connection *connection,
                              unsigned int status, const char *text,
                              const char *header, const char *value);


/* ---------------------------------------------------------------- daemon */

/** What the examples share on their command lines. */
struct EvOptions
{
  unsigned int threads;
  const char *cert_file;
  const char *key_file;
  /** --no-deflate: decline permessage-deflate. */
  int no_deflate;
};

/**
 * Takes -t N, --cert FILE, --key FILE and --no-deflate at argv[*i].
 *
 * @return 1 when consumed (*i advanced past its value), 0 when argv[*i]
 *         is not one of them, -1 on a bad value
 */
int ev_parse_option (int argc, char **argv, int *i, struct EvOptions *opts);

/** The usage lines of ev_parse_option()'s options. */
extern const char ev_options_usage[];

/**
 * Starts libmicrohttpd on 127.0.0.1:@a port with its epoll thread and
 * MHD_ALLOW_UPGRADE, with TLS when opts names a certificate and key,
 * and with a per-connection memory pool sized for a WebSocket handshake.
 * Prints "Serving on http(s)://127.0.0.1:PORT/" on success.
 *
 * @return the daemon, or NULL (message on stderr)
 */
struct MHD_Daemon *ev_daemon_start (const struct EvOptions *opts,
                                    unsigned int port,
                                    MHD_AccessHandlerCallback handler,
                                    void *cls);

/** MHD_OPTION_CONNECTION_MEMORY_LIMIT: libmicrohttpd touches all of
    it, so it is most of an idle connection's memory.  3 KiB takes a
    handshake request of about 1,200 bytes (a browser's is 500-700
    without cookies). */
#define EV_HTTP_POOL_SIZE 3072

/** The pool of a TLS daemon (wss://) on libmicrohttpd 1.0 and later.
    Their relay of an upgraded TLS connection (a socketpair between our
    socket and the TLS session) takes its two buffers, halves of what is
    left, from the pool, and encrypts what it read of ours in one
    record: with 3 KiB that is about 1.3 KiB records.  36 KiB leaves an
    outgoing half of 16 KiB, TLS's largest record.  libmicrohttpd
    touches the whole pool, so an idle wss connection costs about 34 KB
    more (see ev_tls_pool_size() for 0.9.x, where this buys nothing). */
#define EV_HTTPS_POOL_SIZE (36 * 1024)

/**
 * The connection pool for a TLS daemon on the libmicrohttpd that is
 * loaded: EV_HTTPS_POOL_SIZE from version 1.0 on, EV_HTTP_POOL_SIZE
 * before (see evloop.c).
 */
size_t ev_tls_pool_size (void);


/* ---------------------------------------------------------------- loops */

/** The loop of the calling thread, NULL outside loop threads. */
struct EvLoop *ev_loop_current (void);

unsigned int ev_loop_index (const struct EvLoop *loop);

struct EvServer *ev_loop_server (struct EvLoop *loop);

/**
 * Runs fn(arg) in @a loop's thread, soon.  Callable from any thread.
 *
 * @return 0, or -1 when the loop has ended (fn is not called)
 */
int ev_loop_post (struct EvLoop *loop, void (*fn) (struct EvLoop *, void *),
                  void *arg);

/*
  Other file descriptors and timers in a loop, for example hiredis's
  asynchronous context (redisAsyncContext): create it in the loop's
  thread (EvConfig.on_loop_start), and let its adapter's addRead/delRead/addWrite/
  delWrite callbacks call ev_watch_set (w, ev_watch_events (w) | EV_READ)
  and so on, its cleanup call ev_watch_free(), and its scheduleTimer
  call ev_timer_arm(); the watch callback calls redisAsyncHandleRead()
  or redisAsyncHandleWrite(), the timer redisAsyncHandleTimeout().  All
  of these run in the loop's thread only: EvConfig.on_loop_start and
  on_loop_stop are the places to create and free them.
*/

/** Interest flags of ev_watch_set(). */
#define EV_READ 1
#define EV_WRITE 2

/**
 * Watches @a fd in @a loop (from its thread): cb(w, events, arg) runs in
 * the loop thread when the fd is ready for an interest set with
 * ev_watch_set().  For adapters such as hiredis's.
 */
struct EvWatch *
ev_watch_new (struct EvLoop *loop, int fd,
              void (*cb) (struct EvWatch *w, int events, void *arg), void *arg);

/** Sets the interest (EV_READ | EV_WRITE, or 0). */
int ev_watch_set (struct EvWatch *w, int events);

int ev_watch_events (const struct EvWatch *w);

/** Stops watching (the fd stays open) and frees @a w. */
void ev_watch_free (struct EvWatch *w);

/** A one-shot timer of @a loop, disarmed when created. */
struct EvTimer *ev_timer_new (struct EvLoop *loop,
                              void (*cb) (struct EvTimer *t, void *arg),
                              void *arg);

/** (Re)arms the timer to fire once, @a ms milliseconds from now. */
void ev_timer_arm (struct EvTimer *t, unsigned long ms);

void ev_timer_disarm (struct EvTimer *t);

void ev_timer_free (struct EvTimer *t);


/* ---------------------------------------------------------------- frames */

/*
  Frames: every buffer a connection's stream allocates (what the encode
  functions return) carries a reference count in front of it, so an
  encoded frame can be queued to any number of connections, on any loop,
  and is freed when the last one has sent it.
*/

/** A new frame buffer of @a len bytes, one reference held. */
char *ev_frame_alloc (size_t len);

void ev_frame_ref (char *frame);

void ev_frame_unref (char *frame);


/* ---------------------------------------------------------------- connections */

/** The stream, for the MHD_websocket_encode_* functions. */
struct MHD_WebSocketStream *ev_conn_stream (struct EvConn *c);

void *ev_conn_user (struct EvConn *c);

void ev_conn_set_user (struct EvConn *c, void *user);

struct EvLoop *ev_conn_loop (struct EvConn *c);

/**
 * Queues @a frame (from the stream's encoder or ev_frame_alloc()) and
 * takes over the caller's reference.  The queue is written when the
 * current callback returns.  Dropped once the connection is closing.
 */
void ev_conn_send_frame (struct EvConn *c, char *frame, size_t len);

/** Queues @a frame with a reference of its own: for one frame queued to
    many connections. */
void ev_conn_share_frame (struct EvConn *c, char *frame, size_t len);

/** Encodes and queues a text message. */
int ev_conn_send_text (struct EvConn *c, const char *text, size_t len);

/** Starts the closing handshake with @a code and @a reason. */
void ev_conn_close (struct EvConn *c, unsigned short code, const char *reason);

/** Bytes queued and not yet written. */
size_t ev_conn_queued (const struct EvConn *c);

/**
 * Whether @a c takes the compressed frames of ev_encode_shared_text():
 * it agreed permessage-deflate with server_no_context_takeover and a
 * window no smaller than the shared compressor's.
 */
int ev_conn_takes_shared_deflate (const struct EvConn *c);

/**
 * Encodes a text message once for many connections, in a loop thread:
 * @a plain, uncompressed, for every connection, and, while some
 * connection of the server compresses, @a packed, compressed on its own
 * (no reference to earlier messages, so any receiver's context inflates
 * it), for those where ev_conn_takes_shared_deflate() is true; else
 * NULL.  Both are shared frames holding one reference each.
 *
 * @return 0, or -1 (nothing to free)
 */
int ev_encode_shared_text (const char *text, size_t len, char **plain,
                           size_t *plain_len, char **packed,
                           size_t *packed_len);

#endif
