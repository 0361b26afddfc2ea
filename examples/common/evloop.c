/*
  evloop.c -- event-driven WebSocket serving for the example servers:
  N epoll loops, each owning the connections handed to it.  See
  evloop.h for the model.
*/

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "evloop.h"

/* One read per readiness event, into the loop's buffer: connections own
   no receive buffer, the decoder keeps only a partial frame. */
#define READ_BUFFER_SIZE 65536
/* Most buffers one sendmsg() takes from a queue. */
#define MAX_IOV 64
/* The housekeeping period: idle, ping and close deadlines. */
#define TICK_MS 250
/* After our close frame, at most this much is read and dropped. */
#define DRAIN_MAX_BYTES ((uint64_t) 64 * 1024 * 1024)
/* A relayed (wss://) connection whose client has ended its TCP stream
   ends once the relay has brought nothing for this long (tls_peer_hup). */
#define RELAY_DRAIN_MS 100
/* Connections libmicrohttpd serves at once (HTTP and upgraded). */
#define MAX_CONNECTIONS 60000
/* An HTTP request must be complete in this many seconds. */
#define HTTP_TIMEOUT 10

/* What an epoll event's data.ptr points to: the first member of
   EvConn, EvWatch and the loop's wake-up record. */
enum EvKind
{
  KIND_WAKE,
  KIND_CONN,
  KIND_WATCH
};

/* The header in front of every frame buffer (ev_malloc). */
struct FrameHead
{
  int refs;
  int pad_;
  size_t pad2_;
};

/* One queued frame; several connections may queue the same buffer. */
struct OutSeg
{
  struct OutSeg *next;
  char *data;
  size_t len;
};

struct EvConn
{
  enum EvKind kind;
  struct EvLoop *loop;
  /* The loop's list of connections (housekeeping, shutdown). */
  struct EvConn *prev;
  struct EvConn *next;
  /* The loop's list of connections with output to write. */
  struct EvConn *next_dirty;
  MHD_socket sock;
  /* With TLS: the client's TCP socket, libmicrohttpd's (release_upgraded). */
  MHD_socket tls_fd;
  struct MHD_UpgradeResponseHandle *urh;
  struct MHD_WebSocketStream *ws;
  void *user;
  char *extra;
  size_t extra_len;
  /* The agreed permessage-deflate answer, until the stream is set up. */
  char *deflate;

  struct OutSeg *out_head;
  struct OutSeg *out_tail;
  /* Bytes of out_head already written. */
  size_t out_off;
  size_t queued;

  /* Milliseconds on the loop's clock. */
  uint64_t last_heard;
  uint64_t last_ping;
  uint64_t close_deadline;
  uint64_t drained;
  /* peer_gone: when to end, unless the relay brings more. */
  uint64_t gone_deadline;
  /* Relayed connections: watches the client's TCP socket for its end. */
  struct EvWatch *hup_watch;

  /* EPOLLIN/EPOLLOUT currently registered. */
  uint32_t events;
  enum EvEndReason why;
  unsigned int dirty : 1;
  /* A close frame is queued: nothing else is sent, input is dropped. */
  unsigned int closing : 1;
  /* Our side of the TCP stream is shut down. */
  unsigned int wr_shut : 1;
  /* The socket is one end of libmicrohttpd's TLS relay (wss://), which
     cannot pass a half-close on: see relay_closing_input(). */
  unsigned int relayed : 1;
  /* The peer's close frame has come (relayed connections only). */
  unsigned int peer_closed : 1;
  /* The client ended its TCP stream (relayed connections only). */
  unsigned int peer_gone : 1;
  unsigned int paused : 1;
  unsigned int opened : 1;
  /* Takes the compressed frames of ev_encode_shared_text(). */
  unsigned int shared_deflate : 1;
};

struct EvWatch
{
  enum EvKind kind;
  struct EvWatch *next_dead;
  struct EvLoop *loop;
  int fd;
  int events;
  void (*cb) (struct EvWatch *w, int events, void *arg);
  void *arg;
};

struct EvTimer
{
  struct EvLoop *loop;
  struct EvTimer *next;
  uint64_t when;
  int armed;
  void (*cb) (struct EvTimer *t, void *arg);
  void *arg;
};

struct Task
{
  struct Task *next;
  void (*fn) (struct EvLoop *, void *);
  void *arg;
};

struct EvLoop
{
  enum EvKind kind; /* KIND_WAKE: the eventfd's record */
  struct EvServer *srv;
  unsigned int index;
  pthread_t thread;
  int epfd;
  int wakefd;

  /* Posted work, under lock; closed once the loop has ended. */
  pthread_mutex_t lock;
  struct Task *tasks_head;
  struct Task *tasks_tail;
  int ended;

  /* Loop thread only: */
  struct EvConn *conns;
  unsigned long nconns;
  struct EvConn *dirty;
  struct EvTimer *timers; /* armed, soonest first */
  /* Watches freed during an event batch, freed after it. */
  struct EvWatch *dead_watches;
  uint64_t now;
  uint64_t next_tick;
  int stopping;
  uint64_t stop_deadline;
  char *rbuf;
};

struct EvServer
{
  struct EvConfig cfg;
  unsigned int nloops;
  struct EvLoop *loops;
  unsigned int next_loop;
  pthread_mutex_t lock;
  int stopping;
  unsigned long ended;
  /* Connections with shared_deflate set (atomic). */
  unsigned long shared_deflate_conns;
};

static __thread struct EvLoop *current_loop;
/* A loop thread's encoders of shared frames (ev_encode_shared_text()):
   plain, and compressing every message on its own. */
static __thread struct MHD_WebSocketStream *shared_plain;
static __thread struct MHD_WebSocketStream *shared_packed;


static uint64_t
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


/* ---------------------------------------------------------------- frames */

static struct FrameHead *
head_of (char *buf)
{
  return (struct FrameHead *) (void *) (buf - sizeof (struct FrameHead));
}


/* The stream's allocator: every buffer it hands out can be queued as a
   shared frame. */
static void *
ev_malloc (size_t len)
{
  struct FrameHead *h;

  if (len > SIZE_MAX - sizeof (*h))
    return NULL;
  h = malloc (sizeof (*h) + len);
  if (NULL == h)
    return NULL;
  h->refs = 1;
  return (char *) (h + 1);
}


static void *
ev_realloc (void *buf, size_t len)
{
  struct FrameHead *h;

  if (NULL == buf)
    return ev_malloc (len);
  if (len > SIZE_MAX - sizeof (*h))
    return NULL;
  h = realloc (head_of (buf), sizeof (*h) + len);
  if (NULL == h)
    return NULL;
  return (char *) (h + 1);
}


static void
ev_free (void *buf)
{
  if (NULL != buf)
    free (head_of (buf));
}


char *
ev_frame_alloc (size_t len)
{
  return ev_malloc (len);
}


void
ev_frame_ref (char *frame)
{
  __atomic_fetch_add (&head_of (frame)->refs, 1, __ATOMIC_RELAXED);
}


void
ev_frame_unref (char *frame)
{
  if (1 == __atomic_fetch_sub (&head_of (frame)->refs, 1, __ATOMIC_ACQ_REL))
    ev_free (frame);
}


/* ---------------------------------------------------------------- stream setup */

/* The window of the shared compressor (the library's default), which a
   connection's agreed server window must not be below. */
#define SHARED_DEFLATE_WINDOW_BITS 12

/* The answer for the shared compressor: every message on its own. */
static const char shared_deflate_answer[] =
  "permessage-deflate; server_no_context_takeover";

/**
 * Whether frames compressed on their own with the shared compressor
 * suit a connection that agreed @a answer (ours, so well-formed).
 */
static int
answer_takes_shared (const char *answer)
{
  const char *w = strstr (answer, "server_max_window_bits=");

  if (NULL == strstr (answer, "server_no_context_takeover"))
    return 0;
  return (NULL == w)
         || (atoi (w + strlen ("server_max_window_bits="))
             >= SHARED_DEFLATE_WINDOW_BITS);
}


/**
 * Creates a connection's stream.  The one place where streams are set
 * up, with the extension negotiated in the handshake.
 */
static int
stream_setup (struct EvServer *srv, struct EvConn *c)
{
  int ret = -1;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_stream_init2 (
        &c->ws,
        MHD_WEBSOCKET_FLAG_SERVER | MHD_WEBSOCKET_FLAG_NO_FRAGMENTS
          | MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR,
        srv->cfg.max_payload, &ev_malloc, &ev_realloc, &ev_free, NULL, NULL))
    goto out;
  if (NULL != c->deflate)
  {
    if (MHD_WEBSOCKET_STATUS_OK
        != MHD_websocket_stream_enable_deflate (c->ws, c->deflate, -1, 0, 0))
      goto out;
    if (answer_takes_shared (c->deflate))
    {
      c->shared_deflate = 1;
      __atomic_add_fetch (&srv->shared_deflate_conns, 1, __ATOMIC_RELAXED);
    }
  }
  ret = 0;
out:
  free (c->deflate);
  c->deflate = NULL;
  return ret;
}


/* ---------------------------------------------------------------- epoll */

static void
conn_update_events (struct EvConn *c)
{
  struct epoll_event ev;
  uint32_t want = 0;

  if (! c->paused)
    want |= EPOLLIN;
  if (NULL != c->out_head)
    want |= EPOLLOUT;
  if (want == c->events)
    return;
  memset (&ev, 0, sizeof (ev));
  ev.events = want;
  ev.data.ptr = c;
  if (0 == epoll_ctl (c->loop->epfd, EPOLL_CTL_MOD, c->sock, &ev))
    c->events = want;
}


/* ---------------------------------------------------------------- output */

static void
conn_mark_dirty (struct EvConn *c)
{
  if (c->dirty)
    return;
  c->dirty = 1;
  c->next_dirty = c->loop->dirty;
  c->loop->dirty = c;
}


static void
queue_free (struct EvConn *c)
{
  struct OutSeg *s;

  while (NULL != (s = c->out_head))
  {
    c->out_head = s->next;
    ev_frame_unref (s->data);
    free (s);
  }
  c->out_tail = NULL;
  c->out_off = 0;
  c->queued = 0;
}


static void conn_start_close (struct EvConn *c, enum EvEndReason why,
                              unsigned short code, const char *reason,
                              size_t reason_len);


/**
 * Queues a frame, taking over one reference.  @a force queues even
 * while closing (the close frame itself).
 */
static void
queue_frame (struct EvConn *c, char *frame, size_t len, int force)
{
  struct OutSeg *s;

  if ((c->closing && ! force) || (0 == len))
  {
    ev_frame_unref (frame);
    return;
  }
  s = malloc (sizeof (*s));
  if (NULL == s)
  {
    ev_frame_unref (frame);
    conn_start_close (c, EV_END_ERROR,
                      MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION, NULL, 0);
    return;
  }
  s->next = NULL;
  s->data = frame;
  s->len = len;
  if (NULL == c->out_tail)
    c->out_head = s;
  else
    c->out_tail->next = s;
  c->out_tail = s;
  c->queued += len;
  conn_mark_dirty (c);
  if (! force && (c->queued > c->loop->srv->cfg.hard_bound))
  {
    /* It does not read what it is sent: free what it holds (all but a
       frame already begun) and tell it why, if it ever reads again. */
    struct OutSeg *keep = c->out_head;

    if (0 == c->out_off)
      keep = NULL;
    if (NULL != keep)
    {
      struct OutSeg *rest = keep->next;

      keep->next = NULL;
      c->out_tail = keep;
      c->queued = keep->len - c->out_off;
      while (NULL != rest)
      {
        struct OutSeg *n = rest->next;

        ev_frame_unref (rest->data);
        free (rest);
        rest = n;
      }
    }
    else
      queue_free (c);
    conn_start_close (c, EV_END_STALLED,
                      MHD_WEBSOCKET_CLOSEREASON_POLICY_VIOLATED, "too slow", 8);
  }
}


/**
 * Writes as much of the queue as the socket takes.
 *
 * @return 0, or -1 when the socket failed
 */
static int
conn_flush (struct EvConn *c)
{
  while (NULL != c->out_head)
  {
    struct iovec iov[MAX_IOV];
    struct msghdr msg;
    struct OutSeg *s = c->out_head;
    size_t off = c->out_off;
    int n = 0;
    ssize_t sent;

    while ((NULL != s) && (n < MAX_IOV))
    {
      iov[n].iov_base = s->data + off;
      iov[n].iov_len = s->len - off;
      off = 0;
      n++;
      s = s->next;
    }
    memset (&msg, 0, sizeof (msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t) n;
    sent = sendmsg (c->sock, &msg, MSG_NOSIGNAL);
    if (sent < 0)
    {
      if (EINTR == errno)
        continue;
      if ((EAGAIN == errno) || (EWOULDBLOCK == errno))
        break;
      return -1;
    }
    c->queued -= (size_t) sent;
    while (sent > 0)
    {
      s = c->out_head;
      if ((size_t) sent < s->len - c->out_off)
      {
        c->out_off += (size_t) sent;
        break;
      }
      sent -= (ssize_t) (s->len - c->out_off);
      c->out_off = 0;
      c->out_head = s->next;
      if (NULL == c->out_head)
        c->out_tail = NULL;
      ev_frame_unref (s->data);
      free (s);
    }
  }
  if ((NULL == c->out_head) && c->closing && c->relayed)
  {
    /* TLS relay: the close frame is out and the peer has answered, so
       the handshake is complete and the server ends the connection
       (RFC 6455 7.1.1); libmicrohttpd sends what it still holds, then
       closes the TCP connection.  Until the answer comes, nothing is
       shut down: see relay_closing_input(). */
    if (c->peer_closed)
      return -1;
  }
  else if ((NULL == c->out_head) && c->closing && ! c->wr_shut)
  {
    /* The close frame is out: a FIN after it, then the peer's rest is
       read and dropped until it closes too. */
    (void) shutdown (c->sock, SHUT_WR);
    c->wr_shut = 1;
  }
  /* Read again once the queue has drained well below the soft bound. */
  if (c->paused && (c->queued <= c->loop->srv->cfg.soft_bound / 2))
    c->paused = 0;
  conn_update_events (c);
  return 0;
}


/* ---------------------------------------------------------------- connection end */

/**
 * Gives an upgraded socket back to libmicrohttpd, which closes it.
 *
 * With TLS (@a tls_fd valid) libmicrohttpd relays through a socketpair
 * and ends the TCP connection only once its relay has seen both an end
 * of our socket and an end of the client's input.  MHD_UPGRADE_ACTION_
 * CLOSE shuts our socket down before it marks the handle closed, and the
 * relay thread, woken in between, takes it for a plain end of our
 * output and then waits for the client (0.9.75 and 1.0.1 alike): a
 * client that waits for the server kept the connection open.  Shutting
 * down the reading side of the TCP socket first ends the client's input
 * for the relay (nothing is sent, and what we wrote is still relayed),
 * so the relay finishes in either order.
 */
static void
release_upgraded (struct MHD_UpgradeResponseHandle *urh, MHD_socket tls_fd)
{
  if (MHD_INVALID_SOCKET != tls_fd)
    (void) shutdown (tls_fd, SHUT_RD);
  MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
}


/**
 * Ends the connection now: the application hears of it, the socket goes
 * back to libmicrohttpd (exactly once) and the memory is freed.
 */
static void
conn_end (struct EvConn *c)
{
  struct EvLoop *loop = c->loop;
  struct EvServer *srv = loop->srv;

  (void) epoll_ctl (loop->epfd, EPOLL_CTL_DEL, c->sock, NULL);
  /* Before the socket goes back: libmicrohttpd closes the TCP socket. */
  ev_watch_free (c->hup_watch);
  c->hup_watch = NULL;
  if (NULL != c->prev)
    c->prev->next = c->next;
  else
    loop->conns = c->next;
  if (NULL != c->next)
    c->next->prev = c->prev;
  loop->nconns--;
  if (c->dirty)
  {
    struct EvConn **p;

    for (p = &loop->dirty; NULL != *p; p = &(*p)->next_dirty)
      if (*p == c)
      {
        *p = c->next_dirty;
        break;
      }
  }
  if (c->opened && (NULL != srv->cfg.on_close))
    srv->cfg.on_close (c, c->why);
  else if (! c->opened && (NULL != c->user) && (NULL != srv->cfg.free_user))
    srv->cfg.free_user (srv->cfg.cls, c->user);
  queue_free (c);
  if (NULL != c->ws)
    MHD_websocket_stream_free (c->ws);
  if (c->shared_deflate)
    __atomic_sub_fetch (&srv->shared_deflate_conns, 1, __ATOMIC_RELAXED);
  free (c->deflate);
  /* From here on the socket is libmicrohttpd's, which closes it. */
  release_upgraded (c->urh, c->tls_fd);
  free (c->extra);
  free (c);
  pthread_mutex_lock (&srv->lock);
  srv->ended++;
  pthread_mutex_unlock (&srv->lock);
}


/**
 * Queues a close frame as the last frame; the connection ends when the
 * peer has closed too or close_timeout_ms have passed.
 */
static void
conn_start_close (struct EvConn *c, enum EvEndReason why, unsigned short code,
                  const char *reason, size_t reason_len)
{
  char *frame;
  size_t frame_len;

  if (c->closing)
    return;
  c->why = why;
  if ((NULL != c->ws)
      && (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_close (c->ws, code, reason, reason_len,
                                         &frame, &frame_len)))
    queue_frame (c, frame, frame_len, 1);
  c->closing = 1;
  c->close_deadline = c->loop->now + c->loop->srv->cfg.close_timeout_ms;
  /* Input is dropped from now on; keep reading so that the peer's
     close frame and FIN are seen. */
  c->paused = 0;
  conn_mark_dirty (c);
}


/* Closes with a frame the decoder generated (1002, 1007, 1009). */
static void
conn_close_with_frame (struct EvConn *c, char *frame, size_t len)
{
  if (c->closing)
  {
    ev_free (frame);
    return;
  }
  c->why = EV_END_PROTOCOL;
  queue_frame (c, frame, len, 1);
  c->closing = 1;
  c->close_deadline = c->loop->now + c->loop->srv->cfg.close_timeout_ms;
  c->paused = 0;
}


/**
 * Answers the peer's close frame (RFC 6455 5.5.1).  Codes from 5000 up
 * pass the decoder unjudged, but RFC 6455 7.4.2 defines none of them, so
 * they are answered with 1002.
 */
static void
answer_close (struct EvConn *c, const char *payload, size_t payload_len)
{
  const struct EvConfig *cfg = &c->loop->srv->cfg;
  unsigned short code;
  const char *reason;
  size_t reason_len;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_split_close_reason (payload, payload_len, &code, &reason,
                                           &reason_len))
    conn_start_close (c, EV_END_PEER, MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR,
                      NULL, 0);
  else if (MHD_WEBSOCKET_CLOSEREASON_NO_REASON == code)
    conn_start_close (c, EV_END_PEER,
                      0 == cfg->empty_close_code
                        ? MHD_WEBSOCKET_CLOSEREASON_NO_REASON
                        : cfg->empty_close_code,
                      NULL, 0);
  else if (code >= 5000)
    conn_start_close (c, EV_END_PEER, MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR,
                      NULL, 0);
  else if (cfg->close_echo_reason)
    conn_start_close (c, EV_END_PEER, code, reason, reason_len);
  else
    conn_start_close (c, EV_END_PEER, code, NULL, 0);
}


/* ---------------------------------------------------------------- input */

static void relay_closing_input (struct EvConn *c, const char *data,
                                 size_t len);


/**
 * Decodes received bytes and acts on each complete frame.
 */
static void
conn_input (struct EvConn *c, const char *data, size_t len)
{
  const struct EvConfig *cfg = &c->loop->srv->cfg;
  size_t offset = 0;

  /* One decode call returns at most one frame: call again with the
     unconsumed rest until the decoder has taken every byte. */
  while ((offset < len) && ! c->closing)
  {
    size_t used = 0;
    char *payload = NULL;
    size_t payload_len = 0;
    char *frame;
    size_t frame_len;
    enum MHD_WEBSOCKET_STATUS status;

    status = MHD_websocket_decode (c->ws, data + offset, len - offset, &used,
                                   &payload, &payload_len);
    offset += used;
    switch (status)
    {
    case MHD_WEBSOCKET_STATUS_OK:
      if (offset < len)
      {
        fprintf (stderr, "decoder stopped before the end of its input\n");
        conn_start_close (c, EV_END_ERROR,
                          MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION, NULL,
                          0);
      }
      break;
    case MHD_WEBSOCKET_STATUS_TEXT_FRAME:
    case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
      if (NULL != cfg->on_message)
        cfg->on_message (c, MHD_WEBSOCKET_STATUS_BINARY_FRAME == status,
                         payload, payload_len);
      break;
    case MHD_WEBSOCKET_STATUS_PING_FRAME:
      /* RFC 6455 5.5.3: the pong carries the ping's payload. */
      if (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_pong (c->ws, payload, payload_len, &frame,
                                        &frame_len))
        queue_frame (c, frame, frame_len, 0);
      break;
    case MHD_WEBSOCKET_STATUS_PONG_FRAME:
      /* Hearing it is what counts; conn_read noted that. */
      break;
    case MHD_WEBSOCKET_STATUS_CLOSE_FRAME:
      c->peer_closed = 1;
      answer_close (c, payload, payload_len);
      break;
    case MHD_WEBSOCKET_STATUS_MEMORY_ERROR:
      conn_start_close (c, EV_END_ERROR,
                        MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION, NULL,
                        0);
      break;
    default:
      /* Protocol, UTF-8 and size errors: thanks to
         GENERATE_CLOSE_FRAMES_ON_ERROR, payload is the close frame that
         tells the peer why. */
      if (NULL != payload)
      {
        conn_close_with_frame (c, payload, payload_len);
        payload = NULL;
      }
      else
        conn_start_close (c, EV_END_PROTOCOL,
                          MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR, NULL, 0);
      break;
    }
    if (NULL != payload)
      MHD_websocket_free (c->ws, payload);
    if (MHD_WEBSOCKET_STATUS_OK == status)
      break;
  }
  /* A close began on a frame of this read: the bytes after it may hold
     the peer's close frame already. */
  if (c->closing && (offset < len)
      && (MHD_WEBSOCKET_VALIDITY_INVALID
          != MHD_websocket_stream_is_valid (c->ws)))
    relay_closing_input (c, data + offset, len - offset);
  if (! c->closing && (c->queued > cfg->soft_bound))
  {
    /* Backpressure: read no more until the peer has taken its answers. */
    c->paused = 1;
    conn_mark_dirty (c);
  }
}


/**
 * Input of a relayed (wss://) connection after our close frame.
 *
 * Over ws:// our close frame is followed by a FIN (shutdown (SHUT_WR)),
 * so a client that waits for the server to end the TCP connection sees
 * it end, and answers with its own FIN.  Over wss:// the socket is one
 * end of libmicrohttpd's socketpair relay, which passes no half-close on
 * to the client (it only stops reading our end, and 0.9.75 then misses
 * even the later MHD_UPGRADE_ACTION_CLOSE until the client sends more).
 * So a relayed connection is never half-closed; instead its input is
 * decoded until the peer's close frame comes, and then the connection
 * ends (conn_flush).  After a protocol error the stream cannot be
 * decoded any more: whatever comes then is taken for the answer.
 */
static void
relay_closing_input (struct EvConn *c, const char *data, size_t len)
{
  size_t offset = 0;

  if (! c->relayed || c->peer_closed)
    return;
  if (MHD_WEBSOCKET_VALIDITY_INVALID == MHD_websocket_stream_is_valid (c->ws))
    c->peer_closed = 1;
  while (! c->peer_closed && (offset < len))
  {
    size_t used = 0;
    char *payload = NULL;
    size_t payload_len = 0;
    enum MHD_WEBSOCKET_STATUS status;

    status = MHD_websocket_decode (c->ws, data + offset, len - offset, &used,
                                   &payload, &payload_len);
    offset += used;
    if (NULL != payload)
      MHD_websocket_free (c->ws, payload);
    if (MHD_WEBSOCKET_STATUS_OK == status)
      break;
    /* A close frame, or an error after which nothing can be decoded;
       other messages are dropped. */
    if ((MHD_WEBSOCKET_STATUS_CLOSE_FRAME == status) || ((int) status < 0))
      c->peer_closed = 1;
  }
  if (c->peer_closed)
    conn_mark_dirty (c);
}


/**
 * One read on a readable connection.
 *
 * @return 0, or -1 when the connection has ended
 */
static int
conn_read (struct EvConn *c)
{
  ssize_t got;

  got = recv (c->sock, c->loop->rbuf, READ_BUFFER_SIZE, 0);
  if (got < 0)
  {
    if ((EINTR == errno) || (EAGAIN == errno) || (EWOULDBLOCK == errno))
      return 0;
    if (! c->closing)
      c->why = EV_END_ERROR;
    conn_end (c);
    return -1;
  }
  if (0 == got)
  {
    /* EOF: the peer is done (after its close frame, or without one). */
    if (! c->closing)
      c->why = EV_END_PEER;
    conn_end (c);
    return -1;
  }
  c->last_heard = c->loop->now;
  if (c->peer_gone)
    c->gone_deadline = c->loop->now + RELAY_DRAIN_MS;
  if (c->closing)
  {
    c->drained += (uint64_t) got;
    if (c->drained > DRAIN_MAX_BYTES)
    {
      conn_end (c);
      return -1;
    }
    relay_closing_input (c, c->loop->rbuf, (size_t) got);
    return 0;
  }
  conn_input (c, c->loop->rbuf, (size_t) got);
  return 0;
}


/* ---------------------------------------------------------------- adoption */

/**
 * The client of a relayed (wss://) connection ended its TCP stream.
 * libmicrohttpd's relay then stops reading it but does not end our
 * socket, so over wss a client that goes away without a close frame
 * would be noticed only at the idle timeout; over ws the loop reads an
 * EOF at once.  So the loop also watches the client's socket, for
 * EPOLLRDHUP only (it reads nothing there), and ends the connection once
 * the relay has brought no more for RELAY_DRAIN_MS: what the client sent
 * before its end still reaches the application.
 */
static void
tls_peer_hup (struct EvWatch *w, int events, void *arg)
{
  struct EvConn *c = arg;

  (void) events;
  ev_watch_free (w);
  c->hup_watch = NULL;
  c->peer_gone = 1;
  c->gone_deadline = c->loop->now + RELAY_DRAIN_MS;
}


/** Starts watching the client's TCP socket of a relayed connection. */
static void
watch_tls_peer (struct EvLoop *loop, struct EvConn *c)
{
  struct epoll_event ev;

  c->hup_watch = ev_watch_new (loop, c->tls_fd, &tls_peer_hup, c);
  if (NULL == c->hup_watch)
    return; /* the idle timeout will do */
  memset (&ev, 0, sizeof (ev));
  ev.events = EPOLLRDHUP;
  ev.data.ptr = c->hup_watch;
  if (0 != epoll_ctl (loop->epfd, EPOLL_CTL_MOD, c->tls_fd, &ev))
  {
    ev_watch_free (c->hup_watch);
    c->hup_watch = NULL;
    return;
  }
  c->hup_watch->events = EV_READ;
}


static void
adopt_task (struct EvLoop *loop, void *arg)
{
  struct EvConn *c = arg;
  struct EvServer *srv = loop->srv;
  struct epoll_event ev;
  int flags;

  c->loop = loop;
  c->last_heard = c->last_ping = loop->now;
  if (loop->ended)
  {
    /* Posted just before the loop ended: nobody will serve it. */
    if ((NULL != c->user) && (NULL != srv->cfg.free_user))
      srv->cfg.free_user (srv->cfg.cls, c->user);
    release_upgraded (c->urh, c->tls_fd);
    free (c->extra);
    free (c->deflate);
    free (c);
    return;
  }
  c->next = loop->conns;
  if (NULL != loop->conns)
    loop->conns->prev = c;
  loop->conns = c;
  loop->nconns++;
  flags = fcntl (c->sock, F_GETFL);
  if ((flags < 0) || (0 != fcntl (c->sock, F_SETFL, flags | O_NONBLOCK))
      || (0 != stream_setup (srv, c)))
  {
    c->why = EV_END_ERROR;
    conn_end (c);
    return;
  }
  memset (&ev, 0, sizeof (ev));
  ev.events = EPOLLIN;
  ev.data.ptr = c;
  if (0 != epoll_ctl (loop->epfd, EPOLL_CTL_ADD, c->sock, &ev))
  {
    c->why = EV_END_ERROR;
    conn_end (c);
    return;
  }
  c->events = EPOLLIN;
  if (c->relayed)
    watch_tls_peer (loop, c);
  c->opened = 1;
  if (NULL != srv->cfg.on_open)
    srv->cfg.on_open (c);
  if (loop->stopping)
    conn_start_close (c, EV_END_SHUTDOWN, MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY,
                      srv->cfg.shutdown_reason,
                      strlen (srv->cfg.shutdown_reason));
  else if (c->extra_len > 0)
    conn_input (c, c->extra, c->extra_len);
  free (c->extra);
  c->extra = NULL;
  c->extra_len = 0;
}


/**
 * Chooses among the client's permessage-deflate offers, as configured;
 * writes the answer and returns 1, or returns 0 (no compression).
 */
static int
negotiate_deflate (const struct EvServer *srv,
                   struct MHD_Connection *connection,
                   char answer[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE])
{
  answer[0] = '\0';
  return srv->cfg.deflate
         && (MHD_WEBSOCKET_STATUS_OK
             == MHD_websocket_deflate_negotiate (
               MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                            "Sec-WebSocket-Extensions"),
               srv->cfg.deflate_flags, 0, 0, answer,
               MHD_WEBSOCKET_DEFLATE_HEADER_SIZE));
}


/**
 * libmicrohttpd's upgrade callback: the socket goes to the next loop.
 */
static void
on_upgrade (void *cls, struct MHD_Connection *connection, void *req_cls,
            const char *extra_in, size_t extra_in_size, MHD_socket sock,
            struct MHD_UpgradeResponseHandle *urh)
{
  struct EvServer *srv = cls;
  struct EvConn *c;
  unsigned int i;
  MHD_socket tls_fd = MHD_INVALID_SOCKET;

  (void) req_cls;
  {
    /* WebSocket frames are written whole (queued ones together, with
       one writev), so Nagle's algorithm only adds delay: a frame
       written while the previous one is unacknowledged would wait for
       the peer's delayed ACK.  With TLS the socket we get is one end of
       libmicrohttpd's relay; the client's TCP socket may also have been
       left corked by the HTTP response. */
    const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    int on = 1;
    int off = 0;

    (void) setsockopt (sock, IPPROTO_TCP, TCP_NODELAY, &on, sizeof (on));
    if ((NULL != ci) && (ci->connect_fd != sock))
    {
      tls_fd = ci->connect_fd;
      (void) setsockopt (ci->connect_fd, IPPROTO_TCP, TCP_CORK, &off,
                         sizeof (off));
      (void) setsockopt (ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &on,
                         sizeof (on));
    }
  }
  c = calloc (1, sizeof (*c));
  if (NULL == c)
  {
    release_upgraded (urh, tls_fd);
    return;
  }
  c->kind = KIND_CONN;
  c->sock = sock;
  c->tls_fd = tls_fd;
  c->relayed = MHD_INVALID_SOCKET != tls_fd;
  c->urh = urh;
  if (extra_in_size > 0)
  {
    c->extra = malloc (extra_in_size);
    if (NULL == c->extra)
    {
      free (c);
      release_upgraded (urh, tls_fd);
      return;
    }
    memcpy (c->extra, extra_in, extra_in_size);
    c->extra_len = extra_in_size;
  }
  {
    /* The same request gives the same answer as in ev_answer_upgrade(). */
    char answer[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];

    if (negotiate_deflate (srv, connection, answer))
      c->deflate = strdup (answer);
  }
  if (NULL != srv->cfg.on_upgrade)
    c->user = srv->cfg.on_upgrade (srv->cfg.cls, connection);
  pthread_mutex_lock (&srv->lock);
  i = srv->next_loop++ % srv->nloops;
  pthread_mutex_unlock (&srv->lock);
  if (0 != ev_loop_post (&srv->loops[i], &adopt_task, c))
  {
    /* The loops have ended. */
    if ((NULL != c->user) && (NULL != srv->cfg.free_user))
      srv->cfg.free_user (srv->cfg.cls, c->user);
    release_upgraded (urh, tls_fd);
    free (c->extra);
    free (c->deflate);
    free (c);
  }
}


/* ---------------------------------------------------------------- loop */

int
ev_loop_post (struct EvLoop *loop, void (*fn) (struct EvLoop *, void *),
              void *arg)
{
  struct Task *t = malloc (sizeof (*t));
  int wake = 0;
  uint64_t one = 1;

  if (NULL == t)
    return -1;
  t->next = NULL;
  t->fn = fn;
  t->arg = arg;
  pthread_mutex_lock (&loop->lock);
  if (loop->ended)
  {
    pthread_mutex_unlock (&loop->lock);
    free (t);
    return -1;
  }
  /* Only the first task of a batch needs to wake the loop. */
  if (NULL == loop->tasks_tail)
  {
    loop->tasks_head = t;
    wake = 1;
  }
  else
    loop->tasks_tail->next = t;
  loop->tasks_tail = t;
  pthread_mutex_unlock (&loop->lock);
  if (wake)
    (void) ! write (loop->wakefd, &one, sizeof (one));
  return 0;
}


static void
run_tasks (struct EvLoop *loop)
{
  struct Task *t;
  uint64_t count;

  (void) ! read (loop->wakefd, &count, sizeof (count));
  pthread_mutex_lock (&loop->lock);
  t = loop->tasks_head;
  loop->tasks_head = loop->tasks_tail = NULL;
  pthread_mutex_unlock (&loop->lock);
  while (NULL != t)
  {
    struct Task *next = t->next;

    t->fn (loop, t->arg);
    free (t);
    t = next;
  }
}


static void
flush_dirty (struct EvLoop *loop)
{
  while (NULL != loop->dirty)
  {
    struct EvConn *c = loop->dirty;

    loop->dirty = c->next_dirty;
    c->dirty = 0;
    if (0 != conn_flush (c))
    {
      if (! c->closing)
        c->why = EV_END_ERROR;
      conn_end (c);
    }
  }
}


/* Idle, ping and close deadlines, and the end of a shutdown. */
static void
housekeeping (struct EvLoop *loop)
{
  const struct EvConfig *cfg = &loop->srv->cfg;
  struct EvConn *c = loop->conns;
  uint64_t now = loop->now;

  while (NULL != c)
  {
    struct EvConn *next = c->next;
    char *frame;
    size_t frame_len;

    if (c->peer_gone && (now >= c->gone_deadline))
    {
      /* A relayed client ended its TCP stream (tls_peer_hup). */
      if (! c->closing)
        c->why = EV_END_PEER;
      conn_end (c);
    }
    else if (c->closing)
    {
      if ((now >= c->close_deadline)
          || (loop->stopping && (now >= loop->stop_deadline)))
        conn_end (c);
    }
    else if ((0 != cfg->idle_timeout_ms)
             && (now - c->last_heard >= cfg->idle_timeout_ms))
      conn_start_close (c, EV_END_IDLE, MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY,
                        "idle timeout", 12);
    else if ((0 != cfg->ping_interval_ms)
             && (now - c->last_heard >= cfg->ping_interval_ms)
             && (now - c->last_ping >= cfg->ping_interval_ms))
    {
      c->last_ping = now;
      if (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_ping (c->ws, "ka", 2, &frame, &frame_len))
        queue_frame (c, frame, frame_len, 0);
    }
    c = next;
  }
}


static void
fire_timers (struct EvLoop *loop)
{
  while ((NULL != loop->timers) && (loop->timers->when <= loop->now))
  {
    struct EvTimer *t = loop->timers;

    loop->timers = t->next;
    t->armed = 0;
    t->cb (t, t->arg);
  }
}


static void
stop_task (struct EvLoop *loop, void *arg)
{
  const struct EvConfig *cfg = &loop->srv->cfg;
  struct EvConn *c;

  if (NULL != cfg->on_loop_stop)
    cfg->on_loop_stop (loop, cfg->cls);
  loop->stopping = 1;
  loop->stop_deadline = loop->now + (uint64_t) (uintptr_t) arg;
  for (c = loop->conns; NULL != c; c = c->next)
    conn_start_close (c, EV_END_SHUTDOWN, MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY,
                      cfg->shutdown_reason, strlen (cfg->shutdown_reason));
}


static void *
loop_main (void *cls)
{
  struct EvLoop *loop = cls;
  struct epoll_event events[256];

  current_loop = loop;
  {
    /* Named, so that tools and tests can tell the loops apart. */
    char name[16];

    snprintf (name, sizeof (name), "evloop-%u", loop->index);
    (void) pthread_setname_np (pthread_self (), name);
  }
  loop->now = now_ms ();
  loop->next_tick = loop->now + TICK_MS;
  if (NULL != loop->srv->cfg.on_loop_start)
    loop->srv->cfg.on_loop_start (loop, loop->srv->cfg.cls);
  for (;;)
  {
    int timeout = (int) (loop->next_tick - loop->now);
    int n;
    int i;

    if ((NULL != loop->timers) && (loop->timers->when < loop->next_tick))
      timeout = (loop->timers->when > loop->now)
                  ? (int) (loop->timers->when - loop->now)
                  : 0;
    if (NULL != loop->dirty)
      timeout = 0;
    n = epoll_wait (loop->epfd, events, 256, timeout);
    loop->now = now_ms ();
    for (i = 0; i < n; i++)
    {
      enum EvKind kind = *(enum EvKind *) events[i].data.ptr;

      if (KIND_WAKE == kind)
        run_tasks (loop);
      else if (KIND_WATCH == kind)
      {
        struct EvWatch *w = events[i].data.ptr;
        int ev = 0;

        if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
          ev |= EV_READ;
        if (events[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
          ev |= EV_WRITE;
        ev &= w->events;
        if (0 != ev)
          w->cb (w, ev, w->arg);
      }
      else
      {
        struct EvConn *c = events[i].data.ptr;

        /* Connections end only in their own event handlers or after
           the batch (dirty flushes, housekeeping), so no other event
           of this batch can point to a freed one. */
        if (events[i].events & EPOLLOUT)
        {
          if (0 != conn_flush (c))
          {
            if (! c->closing)
              c->why = EV_END_ERROR;
            conn_end (c);
            continue;
          }
        }
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
          (void) conn_read (c);
      }
    }
    while (NULL != loop->dead_watches)
    {
      struct EvWatch *w = loop->dead_watches;

      loop->dead_watches = w->next_dead;
      free (w);
    }
    fire_timers (loop);
    if (loop->now >= loop->next_tick)
    {
      housekeeping (loop);
      loop->next_tick = loop->now + TICK_MS;
    }
    flush_dirty (loop);
    if (loop->stopping && (NULL == loop->conns))
      break;
  }
  /* No more tasks can arrive; run those already posted (they may hold
     frame references) and refuse the rest. */
  pthread_mutex_lock (&loop->lock);
  loop->ended = 1;
  pthread_mutex_unlock (&loop->lock);
  run_tasks (loop);
  while (NULL != loop->dead_watches)
  {
    struct EvWatch *w = loop->dead_watches;

    loop->dead_watches = w->next_dead;
    free (w);
  }
  if (NULL != shared_plain)
    MHD_websocket_stream_free (shared_plain);
  if (NULL != shared_packed)
    MHD_websocket_stream_free (shared_packed);
  shared_plain = shared_packed = NULL;
  current_loop = NULL;
  return NULL;
}


/* ---------------------------------------------------------------- server */

struct EvServer *
ev_server_start (const struct EvConfig *cfg)
{
  struct EvServer *srv;
  unsigned int i;
  unsigned int n = cfg->threads;

  if (0 == n)
  {
    long cpus = sysconf (_SC_NPROCESSORS_ONLN);

    n = (cpus > 0) ? (unsigned int) cpus : 1;
  }
  srv = calloc (1, sizeof (*srv));
  if (NULL == srv)
    return NULL;
  srv->cfg = *cfg;
  if (NULL == srv->cfg.shutdown_reason)
    srv->cfg.shutdown_reason = "server shutting down";
  srv->nloops = n;
  pthread_mutex_init (&srv->lock, NULL);
  srv->loops = calloc (n, sizeof (*srv->loops));
  if (NULL == srv->loops)
  {
    free (srv);
    return NULL;
  }
  for (i = 0; i < n; i++)
  {
    struct EvLoop *loop = &srv->loops[i];
    struct epoll_event ev;

    loop->kind = KIND_WAKE;
    loop->srv = srv;
    loop->index = i;
    pthread_mutex_init (&loop->lock, NULL);
    loop->rbuf = malloc (READ_BUFFER_SIZE);
    loop->epfd = epoll_create1 (EPOLL_CLOEXEC);
    loop->wakefd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    memset (&ev, 0, sizeof (ev));
    ev.events = EPOLLIN;
    ev.data.ptr = loop;
    if ((NULL == loop->rbuf) || (loop->epfd < 0) || (loop->wakefd < 0)
        || (0 != epoll_ctl (loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev))
        || (0 != pthread_create (&loop->thread, NULL, &loop_main, loop)))
    {
      fprintf (stderr, "Could not start event loop %u: %s\n", i,
               strerror (errno));
      /* Loops already started end at once: nothing is connected yet. */
      srv->nloops = i;
      ev_server_stop (srv, 0);
      free (loop->rbuf);
      if (loop->epfd >= 0)
        close (loop->epfd);
      if (loop->wakefd >= 0)
        close (loop->wakefd);
      srv->nloops = 0;
      ev_server_free (srv);
      return NULL;
    }
  }
  return srv;
}


void
ev_server_stop (struct EvServer *srv, unsigned int wait_ms)
{
  unsigned int i;

  pthread_mutex_lock (&srv->lock);
  srv->stopping = 1;
  pthread_mutex_unlock (&srv->lock);
  for (i = 0; i < srv->nloops; i++)
    (void) ev_loop_post (&srv->loops[i], &stop_task,
                         (void *) (uintptr_t) wait_ms);
  for (i = 0; i < srv->nloops; i++)
    pthread_join (srv->loops[i].thread, NULL);
}


void
ev_server_free (struct EvServer *srv)
{
  unsigned int i;

  for (i = 0; i < srv->nloops; i++)
  {
    free (srv->loops[i].rbuf);
    close (srv->loops[i].epfd);
    close (srv->loops[i].wakefd);
    pthread_mutex_destroy (&srv->loops[i].lock);
  }
  free (srv->loops);
  pthread_mutex_destroy (&srv->lock);
  free (srv);
}


unsigned int
ev_server_loop_count (const struct EvServer *srv)
{
  return srv->nloops;
}


struct EvLoop *
ev_server_loop (struct EvServer *srv, unsigned int index)
{
  return &srv->loops[index];
}


unsigned long
ev_server_ended (struct EvServer *srv)
{
  unsigned long n;

  pthread_mutex_lock (&srv->lock);
  n = srv->ended;
  pthread_mutex_unlock (&srv->lock);
  return n;
}


int
ev_server_wait_signal (struct EvServer *srv, const sigset_t *sigs)
{
  unsigned long trimmed_at = 0;

  /* Once a second, if connections ended, hand the heap pages they freed
     back to the system: glibc keeps them in the per-thread arenas
     otherwise, so a burst of thousands of connections would leave the
     server tens of MiB larger for good. */
  for (;;)
  {
    struct timespec second = { 1, 0 };
    unsigned long ended;
    int sig = sigtimedwait (sigs, NULL, &second);

    if ((SIGINT == sig) || (SIGTERM == sig))
      return sig;
    ended = ev_server_ended (srv);
    if (ended != trimmed_at)
    {
      trimmed_at = ended;
      (void) malloc_trim (0);
    }
  }
}


struct EvLoop *
ev_loop_current (void)
{
  return current_loop;
}


unsigned int
ev_loop_index (const struct EvLoop *loop)
{
  return loop->index;
}


struct EvServer *
ev_loop_server (struct EvLoop *loop)
{
  return loop->srv;
}


/* ---------------------------------------------------------------- watches and timers */

struct EvWatch *
ev_watch_new (struct EvLoop *loop, int fd,
              void (*cb) (struct EvWatch *w, int events, void *arg), void *arg)
{
  struct EvWatch *w = calloc (1, sizeof (*w));
  struct epoll_event ev;

  if (NULL == w)
    return NULL;
  w->kind = KIND_WATCH;
  w->loop = loop;
  w->fd = fd;
  w->cb = cb;
  w->arg = arg;
  memset (&ev, 0, sizeof (ev));
  ev.data.ptr = w;
  if (0 != epoll_ctl (loop->epfd, EPOLL_CTL_ADD, fd, &ev))
  {
    free (w);
    return NULL;
  }
  return w;
}


int
ev_watch_set (struct EvWatch *w, int events)
{
  struct epoll_event ev;

  memset (&ev, 0, sizeof (ev));
  if (events & EV_READ)
    ev.events |= EPOLLIN;
  if (events & EV_WRITE)
    ev.events |= EPOLLOUT;
  ev.data.ptr = w;
  if (0 != epoll_ctl (w->loop->epfd, EPOLL_CTL_MOD, w->fd, &ev))
    return -1;
  w->events = events;
  return 0;
}


int
ev_watch_events (const struct EvWatch *w)
{
  return w->events;
}


void
ev_watch_free (struct EvWatch *w)
{
  if (NULL == w)
    return;
  (void) epoll_ctl (w->loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
  /* An event for it may still be in the loop's current batch: it is
     ignored (no interest) and the memory goes after the batch. */
  w->events = 0;
  w->next_dead = w->loop->dead_watches;
  w->loop->dead_watches = w;
}


struct EvTimer *
ev_timer_new (struct EvLoop *loop, void (*cb) (struct EvTimer *t, void *arg),
              void *arg)
{
  struct EvTimer *t = calloc (1, sizeof (*t));

  if (NULL == t)
    return NULL;
  t->loop = loop;
  t->cb = cb;
  t->arg = arg;
  return t;
}


void
ev_timer_disarm (struct EvTimer *t)
{
  struct EvTimer **p;

  if (! t->armed)
    return;
  for (p = &t->loop->timers; NULL != *p; p = &(*p)->next)
    if (*p == t)
    {
      *p = t->next;
      break;
    }
  t->armed = 0;
}


void
ev_timer_arm (struct EvTimer *t, unsigned long ms)
{
  struct EvTimer **p;

  ev_timer_disarm (t);
  t->when = now_ms () + ms;
  for (p = &t->loop->timers; (NULL != *p) && ((*p)->when <= t->when);
       p = &(*p)->next)
    ;
  t->next = *p;
  *p = t;
  t->armed = 1;
}


void
ev_timer_free (struct EvTimer *t)
{
  if (NULL == t)
    return;
  ev_timer_disarm (t);
  free (t);
}


/* ---------------------------------------------------------------- connections */

struct MHD_WebSocketStream *
ev_conn_stream (struct EvConn *c)
{
  return c->ws;
}


void *
ev_conn_user (struct EvConn *c)
{
  return c->user;
}


void
ev_conn_set_user (struct EvConn *c, void *user)
{
  c->user = user;
}


struct EvLoop *
ev_conn_loop (struct EvConn *c)
{
  return c->loop;
}


void
ev_conn_send_frame (struct EvConn *c, char *frame, size_t len)
{
  queue_frame (c, frame, len, 0);
}


void
ev_conn_share_frame (struct EvConn *c, char *frame, size_t len)
{
  ssize_t sent;

  /* A broadcast gives each connection one frame: with nothing queued,
     writing it now costs the same system call as writing it after the
     batch, saves a queue entry, and lets the first members read while
     the loop still sends to the others. */
  if ((NULL == c->out_head) && ! c->closing && (len > 0))
  {
    sent = send (c->sock, frame, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if ((sent > 0) && ((size_t) sent == len))
      return;
    ev_frame_ref (frame);
    queue_frame (c, frame, len, 0);
    /* The part already written (if any) counts as written; a failed
       socket fails again in the flush, which ends the connection. */
    if ((sent > 0) && (c->out_head == c->out_tail) && (NULL != c->out_head))
    {
      c->out_off = (size_t) sent;
      c->queued -= (size_t) sent;
    }
    return;
  }
  ev_frame_ref (frame);
  queue_frame (c, frame, len, 0);
}


int
ev_conn_takes_shared_deflate (const struct EvConn *c)
{
  return c->shared_deflate;
}


/* Encodes @a text with @a *ws, created on first use. */
static char *
encode_shared (struct MHD_WebSocketStream **ws, const char *answer,
               const char *text, size_t len, size_t *frame_len)
{
  char *frame;

  if (NULL == *ws)
  {
    if (MHD_WEBSOCKET_STATUS_OK
        != MHD_websocket_stream_init2 (ws, MHD_WEBSOCKET_FLAG_SERVER, 0,
                                       &ev_malloc, &ev_realloc, &ev_free, NULL,
                                       NULL))
      return NULL;
    if ((NULL != answer)
        && (MHD_WEBSOCKET_STATUS_OK
            != MHD_websocket_stream_enable_deflate (
              *ws, answer, -1, SHARED_DEFLATE_WINDOW_BITS, 0)))
    {
      MHD_websocket_stream_free (*ws);
      *ws = NULL;
      return NULL;
    }
  }
  /* The streams allocate with ev_malloc: the frame is a shared frame
     with one reference. */
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_encode_text (*ws, text, len,
                                    MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame,
                                    frame_len, NULL))
    return NULL;
  return frame;
}


int
ev_encode_shared_text (const char *text, size_t len, char **plain,
                       size_t *plain_len, char **packed, size_t *packed_len)
{
  struct EvLoop *loop = current_loop;

  *packed = NULL;
  *packed_len = 0;
  *plain = encode_shared (&shared_plain, NULL, text, len, plain_len);
  if (NULL == *plain)
    return -1;
  /* Compress only while someone takes it. */
  if ((NULL != loop)
      && (0
          != __atomic_load_n (&loop->srv->shared_deflate_conns,
                              __ATOMIC_RELAXED)))
    *packed = encode_shared (&shared_packed, shared_deflate_answer, text, len,
                             packed_len);
  return 0;
}


int
ev_conn_send_text (struct EvConn *c, const char *text, size_t len)
{
  char *frame;
  size_t frame_len;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_encode_text (c->ws, text, len,
                                    MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame,
                                    &frame_len, NULL))
    return -1;
  queue_frame (c, frame, frame_len, 0);
  return 0;
}


void
ev_conn_close (struct EvConn *c, unsigned short code, const char *reason)
{
  conn_start_close (c, EV_END_APP, code, reason,
                    NULL == reason ? 0 : strlen (reason));
}


size_t
ev_conn_queued (const struct EvConn *c)
{
  return c->queued;
}


/* ---------------------------------------------------------------- HTTP */

enum MHD_Result
ev_http_text (struct MHD_Connection *connection, unsigned int status,
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


/* What scan_header() finds in a request's headers. */
struct HeaderScan
{
  /* Values that hold a CR. */
  unsigned int with_cr;
  /* The headers' size as sent, "Name: value" and CRLF each. */
  size_t bytes;
};


/**
 * MHD_get_connection_values_n() callback: adds one header to a
 * HeaderScan.
 */
static enum MHD_Result
scan_header (void *cls, enum MHD_ValueKind kind, const char *key,
             size_t key_size, const char *value, size_t value_size)
{
  struct HeaderScan *scan = cls;

  (void) kind;
  (void) key;
  scan->bytes += key_size + 4 + value_size;
  if ((NULL != value) && (NULL != memchr (value, '\r', value_size)))
    scan->with_cr++;
  return MHD_YES;
}


int
ev_wants_upgrade (struct MHD_Connection *connection)
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


enum MHD_Result
ev_answer_upgrade (struct EvServer *srv, struct MHD_Connection *connection,
                   const char *method, const char *version)
{
  char accept[29];
  char deflate[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
  struct MHD_Response *response;
  enum MHD_Result ret;

  if (0 != strcmp (method, MHD_HTTP_METHOD_GET))
    return ev_http_text (connection, MHD_HTTP_BAD_REQUEST,
                         "A WebSocket handshake must use GET.\n", NULL, NULL);
  if (MHD_WEBSOCKET_STATUS_OK != MHD_websocket_check_http_version (version))
    return ev_http_text (connection, MHD_HTTP_BAD_REQUEST,
                         "A WebSocket handshake needs HTTP/1.1 or later.\n",
                         NULL, NULL);
  /* libmicrohttpd 1.0 answers 400 itself to a request without Host (RFC
     9112 3.2; RFC 6455 4.2.1 requires it of a handshake) and to a header
     value holding a lone CR (RFC 9110 5.5); 0.9.75 passes both on, the CR
     inside the value.  Refusing them here makes the examples answer the
     same on both.  (A NUL in a value is refused by 1.0 too, but 0.9.75
     ends the value at the NUL, which leaves nothing to see here.) */
  if (NULL
      == MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_HOST))
    return ev_http_text (connection, MHD_HTTP_BAD_REQUEST,
                         "A WebSocket handshake needs a Host header.\n", NULL,
                         NULL);
  {
    struct HeaderScan scan = { 0, 0 };

    (void) MHD_get_connection_values_n (connection, MHD_HEADER_KIND,
                                        &scan_header, &scan);
    if (0 != scan.with_cr)
      return ev_http_text (connection, MHD_HTTP_BAD_REQUEST,
                           "A header value holds a CR.\n", NULL, NULL);
    /* The pool of a TLS connection is larger on libmicrohttpd after
       0.9.75 (ev_tls_pool_size()), which would let it take requests of
       up to 18 KiB where every other connection answers 431 from about
       1,200 bytes; the room is for the relay buffers, so the handshake
       is held to the same bound as everywhere else. */
    if (scan.bytes > EV_HTTP_POOL_SIZE / 2)
      return ev_http_text (connection, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                           "The handshake's headers are too large.\n", NULL,
                           NULL);
  }
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_check_connection_header (MHD_lookup_connection_value (
        connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION)))
    return ev_http_text (connection, MHD_HTTP_BAD_REQUEST,
                         "The Connection header must contain 'Upgrade'.\n",
                         NULL, NULL);
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_check_upgrade_header (MHD_lookup_connection_value (
        connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE)))
    return ev_http_text (connection, MHD_HTTP_BAD_REQUEST,
                         "The Upgrade header must contain 'websocket'.\n", NULL,
                         NULL);
  /* RFC 6455 4.2.2: an unsupported version is answered with 426 and the
     versions we do speak. */
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_check_version_header (MHD_lookup_connection_value (
        connection, MHD_HEADER_KIND, "Sec-WebSocket-Version")))
    return ev_http_text (connection, MHD_HTTP_UPGRADE_REQUIRED,
                         "Only WebSocket version 13 is supported.\n",
                         "Sec-WebSocket-Version", "13");
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_create_accept_header (
        MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                     "Sec-WebSocket-Key"),
        accept))
    return ev_http_text (connection, MHD_HTTP_BAD_REQUEST,
                         "Sec-WebSocket-Key is missing or malformed.\n", NULL,
                         NULL);

  response = MHD_create_response_for_upgrade (&on_upgrade, srv);
  if (NULL == response)
    return MHD_NO;
  /* libmicrohttpd adds "Connection: Upgrade" itself.  No subprotocol
     is negotiated; permessage-deflate is, when offered and enabled. */
  if ((MHD_YES
       != MHD_add_response_header (response, MHD_HTTP_HEADER_UPGRADE,
                                   "websocket"))
      || (MHD_YES
          != MHD_add_response_header (response, "Sec-WebSocket-Accept", accept))
      || (negotiate_deflate (srv, connection, deflate)
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


/* ---------------------------------------------------------------- daemon */

/**
 * Whether the libmicrohttpd loaded at run time is later than 0.9.75.
 * The header's MHD_VERSION does not tell: 0.9.75 and 1.0.x share the
 * soname libmicrohttpd.so.12, so a program built with either header may
 * run on either library.
 */
static int
mhd_later_than_0_9_75 (void)
{
  const char *v = MHD_get_version ();
  unsigned long part[3] = { 0, 0, 0 };
  unsigned int i;

  for (i = 0; (i < 3) && (NULL != v); i++)
  {
    char *end;

    part[i] = strtoul (v, &end, 10);
    v = ('.' == *end) ? end + 1 : NULL;
  }
  if (part[0] != 0)
    return 1;
  if (part[1] != 9)
    return part[1] > 9;
  return part[2] > 75;
}


const char ev_options_usage[] =
  "  -t N         event loop threads (default: one per CPU)\n"
  "  --cert FILE  PEM certificate: serve https:// and wss:// (with --key)\n"
  "  --key FILE   PEM private key of the certificate\n"
  "  --no-deflate decline permessage-deflate compression\n";


int
ev_parse_option (int argc, char **argv, int *i, struct EvOptions *opts)
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
    char *end;
    unsigned long n;

    errno = 0;
    n = strtoul (argv[*i + 1], &end, 10);
    if ((argv[*i + 1][0] < '0') || (argv[*i + 1][0] > '9') || ('\0' != *end)
        || (0 != errno) || (n < 1) || (n > 256))
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
ev_tls_pool_size (void)
{
  /* libmicrohttpd 0.9.75 builds the response header in a write buffer
     that takes all the pool left, and does not give it back before the
     upgrade: the relay of an upgraded TLS connection finds no free pool
     and falls back to its 8-byte emergency buffer, so it sends 4-byte
     TLS records whatever the pool's size (a 1 MiB echo: 262,000 records,
     seconds).  1.0 frees that buffer first and relays through the rest
     of the pool.  So the large pool only where it helps; the runtime
     version counts, not the one built against. */
  if (mhd_later_than_0_9_75 ())
    return EV_HTTPS_POOL_SIZE;
  return EV_HTTP_POOL_SIZE;
}


struct MHD_Daemon *
ev_daemon_start (const struct EvOptions *opts, unsigned int port,
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
     upgraded connection: see ev_tls_pool_size(). */
  size_t pool = EV_HTTP_POOL_SIZE;
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
    pool = ev_tls_pool_size ();
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
     and 1.0.x share a soname, so only this shows which one serves (the
     interop tests compare it with the version configure found). */
  printf ("Serving on %s://%s:%u/\nlibmicrohttpd %s\n", tls ? "https" : "http",
          listen_on, port, MHD_get_version ());
  fflush (stdout);
  return daemon;
}
