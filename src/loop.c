/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file loop.c
 * @brief The loop layer: loop threads that run sessions over sockets.
 *
 * Each loop thread owns the connections handed to it and does their
 * system calls: one read per readiness event into the loop's buffer,
 * fed to the session; one writev() of every pending chunk; shutdown
 * (SHUT_WR) once our close frame is out; and, when the session has
 * ended, MHD_upgrade_action (CLOSE), once.  Everything a callback or a
 * task touches is put on the loop's dirty list, and the list is settled
 * after each batch of events: output written, interest and deadline
 * updated, ended connections freed.  So a connection is freed only
 * between batches, never under an event that still points to it.
 *
 * Deadlines (the sessions' and the application's timers) live in one
 * binary heap per loop; the loop sleeps until the earliest.  The
 * backend is epoll where configure found it, poll(2) otherwise or when
 * asked (MHD_WEBSOCKET_SERVER_OPTION_USE_POLL).
 *
 * Other threads reach a loop only through its task queue (a mutex, and
 * a pipe that wakes the loop) and the table of connection ids, which
 * the same mutex guards.
 */

#if defined(__linux__) && ! defined(_GNU_SOURCE)
/* pthread_setname_np() */
#define _GNU_SOURCE 1
#endif
#include "loop.h"
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#ifdef WS_LOOP_EPOLL
#include <sys/epoll.h>
#endif

#include <microhttpd.h>

/* One read per readiness event, into the loop's buffer: connections own
   no receive buffer, the decoder keeps only a partial frame. */
#define READ_BUFFER_SIZE 65536
/* Most chunks one writev() takes: everything a connection has queued,
   in practice, so that its frames go out in one system call. */
#define MAX_IOV 128
/* Events taken from the backend per wait. */
#define MAX_EVENTS 256
/* No deadline. */
#define NEVER ((unsigned long long) -1)
/* After the session ended cleanly, at most this much of what the peer
   still sends is read and dropped while waiting for its FIN. */
#define DRAIN_MAX_BYTES ((unsigned long long) 64 * 1024 * 1024)
/* Interest bits, whatever the backend. */
#define IO_IN 1u
#define IO_OUT 2u
/* The peer ended its stream (a TLS client's TCP socket, watched for
   nothing else); only where the system reports it. */
#define IO_RDHUP 4u
#if defined(POLLRDHUP)
#define WS_HAVE_RDHUP 1
#endif
/* A relayed (wss://) connection whose client ended its TCP stream ends
   once the relay has brought nothing for this long. */
#define RELAY_DRAIN_MS 100
/* How often a relayed connection that has ended checks whether the
   relay has taken its last bytes (relay_holds_output). */
#define RELAY_POLL_MS 5

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif


/* What a backend event points to: the first member of a connection, a
   watch, or the loop's wake-up pipe. */
enum ws_io_kind
{
  IO_WAKE,
  IO_CONN,
  IO_WATCH,
  /* The client's TCP socket of a relayed connection (ws_conn.hup). */
  IO_HUP
};

struct ws_io
{
  enum ws_io_kind kind;
  int fd;
  /* Interest registered with the backend (IO_IN | IO_OUT). */
  unsigned int want;
  /* Its slot in the poll(2) array. */
  size_t pidx;
};

/* An entry of a loop's deadline heap: a connection's session deadline,
   or an application timer. */
struct ws_heap_node
{
  unsigned long long when;
  /* Position in the heap; NOT_IN_HEAP when absent. */
  size_t index;
  /* 1: part of a connection; 0: part of a timer. */
  int is_conn;
};

#define NOT_IN_HEAP ((size_t) -1)

/* The fields that a broadcast's queueing (broadcast_local()) and the
   writing after it (settle()) touch come first, up to tls_fd: with
   thousands of members no connection is still in the cache when a
   broadcast comes to it, and each further line was a miss per
   delivery. */
struct ws_conn
{
  /* First: the backends hand back the ws_io, which is the connection. */
  struct ws_io io;
  struct MHD_WebSocketSession *session;
  /* The loop's list of connections. */
  struct ws_conn *next;
  struct ws_conn *next_dirty;
  struct MHD_WebSocketLoop *loop;
  unsigned int group;
  unsigned int dirty : 1;
  unsigned int in_list : 1;
  unsigned int wr_shut : 1;
  /* The server is stopping: its end is a shutdown. */
  unsigned int shutdown : 1;
  /* Past the stop deadline: cut off. */
  unsigned int cut : 1;
  /* Being settled or ended: marks are not needed (and must not put a
     connection that may be freed on the list). */
  unsigned int settling : 1;
  /* The peer's byte stream ended or failed. */
  unsigned int eof : 1;
  /* The session ended after our close went out: the socket stays open,
     read and dropped, until the peer's FIN or the close timeout, so
     that the peer gets our close frame and a FIN, not a reset. */
  unsigned int draining : 1;
  /* The peer's close frame came: the closing handshake completed, and
     only its FIN may still be on the way. */
  unsigned int peer_closed : 1;
  unsigned int hup_on : 1;
  /* The client of a relayed connection ended its TCP stream: the
     connection ends at gone_deadline unless the relay brings more. */
  unsigned int peer_gone : 1;
  /* The session of a relayed connection ended while the relay still had
     our last bytes to take: the socket goes back at relay_until at the
     latest (relay_holds_output). */
  unsigned int relay_wait : 1;
  struct ws_heap_node deadline;
  /* With TLS: the client's TCP socket, libmicrohttpd's; -1 otherwise. */
  int tls_fd;
  struct ws_conn *prev;
  /* Relayed connections: the client's TCP socket, watched for its end
     (IO_RDHUP only), while hup_on. */
  struct ws_io hup;
  /* The loop's id table. */
  struct ws_conn *hnext;
  unsigned long long id;
  struct MHD_UpgradeResponseHandle *urh;
  void *user;
  /* Until the loop adopts it: the stream and the bytes already read. */
  struct MHD_WebSocketStream *ws;
  char *extra;
  size_t extra_len;
  unsigned long long relay_until;
  unsigned long long gone_deadline;
  unsigned long long drained;
};

struct MHD_WebSocketWatch
{
  struct ws_io io;
  struct MHD_WebSocketLoop *loop;
  struct MHD_WebSocketWatch *next_dead;
  int events;
  void (*cb) (struct MHD_WebSocketWatch *w, int events, void *arg);
  void *arg;
};

struct MHD_WebSocketTimer
{
  struct ws_heap_node node;
  struct MHD_WebSocketLoop *loop;
  void (*cb) (struct MHD_WebSocketTimer *t, void *arg);
  void *arg;
};

/* Work posted to a loop.  run() is called with live 0 when the loop
   has ended: the task then only releases what it holds. */
struct ws_task
{
  struct ws_task *next;
  void (*run) (struct MHD_WebSocketLoop *loop, struct ws_task *t, int live);
};

struct MHD_WebSocketLoop
{
  struct ws_io wake;
  int wake_wr;
  struct MHD_WebSocketServer *srv;
  unsigned int index;
  pthread_t thread;
  int thread_started;

  /* The backend. */
  int use_poll;
  int epfd;
  struct pollfd *pfds;
  struct ws_io **pios;
  size_t npfd;
  size_t cap_pfd;

  /* Under lock: posted work, the id table, and whether the loop has
     ended (then nothing more is posted). */
  pthread_mutex_t lock;
  struct ws_task *tasks_head;
  struct ws_task *tasks_tail;
  int ended;
  struct ws_conn **buckets;
  size_t nbuckets;
  size_t nids;

  /* Loop thread only. */
  struct ws_conn *conns;
  size_t nconns;
  struct ws_conn *dirty;
  struct ws_heap_node **heap;
  size_t heap_len;
  size_t heap_cap;
  struct MHD_WebSocketWatch *dead_watches;
  unsigned long long now;
  int stopping;
  unsigned long long stop_deadline;
  char *rbuf;
};

struct MHD_WebSocketServer
{
  struct ws_server_settings set;
  /* The application's configuration, copied, with the loop's callbacks
     in place of the application's, which are kept here. */
  struct MHD_WebSocketSessionConfig *config;
  MHD_WebSocketMessageCallback app_message;
  MHD_WebSocketEndCallback app_end;
  MHD_WebSocketOpenCallback app_open;
  MHD_WebSocketLoopCallback loop_cb;
  void *loop_cls;
  unsigned int threads;
  int use_poll;
  unsigned int nloops;
  struct MHD_WebSocketLoop *loops;
  /* Connection ids: the last one given; id % nloops is its loop. */
  unsigned long long last_id;
  int started;
  int stopped;
  char *shutdown_reason;
};

#if defined(__GNUC__)
static __thread struct MHD_WebSocketLoop *current_loop;
#else
#error "the loop layer needs thread-local storage (__thread)"
#endif


static unsigned long long
clock_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (unsigned long long) ts.tv_sec * 1000
         + (unsigned long long) ts.tv_nsec / 1000000;
}


/* ---------------------------------------------------------------- backend */

#ifdef WS_LOOP_EPOLL
static uint32_t
to_epoll (unsigned int want)
{
  return ((want & IO_IN) ? EPOLLIN : 0) | ((want & IO_OUT) ? EPOLLOUT : 0)
         | ((want & IO_RDHUP) ? EPOLLRDHUP : 0);
}
#endif


static short
to_poll (unsigned int want)
{
  return (short) (((want & IO_IN) ? POLLIN : 0)
                  | ((want & IO_OUT) ? POLLOUT : 0)
#ifdef WS_HAVE_RDHUP
                  | ((want & IO_RDHUP) ? POLLRDHUP : 0)
#endif
  );
}


/** Registers @a io with interest @a want; 0 or -1. */
static int
io_add (struct MHD_WebSocketLoop *loop, struct ws_io *io, unsigned int want)
{
  io->want = want;
#ifdef WS_LOOP_EPOLL
  if (! loop->use_poll)
  {
    struct epoll_event ev;

    memset (&ev, 0, sizeof (ev));
    ev.events = to_epoll (want);
    ev.data.ptr = io;
    return epoll_ctl (loop->epfd, EPOLL_CTL_ADD, io->fd, &ev);
  }
#endif
  if (loop->npfd == loop->cap_pfd)
  {
    size_t cap = (0 == loop->cap_pfd) ? 64 : 2 * loop->cap_pfd;
    struct pollfd *p = realloc (loop->pfds, cap * sizeof (*p));
    struct ws_io **q;

    if (NULL == p)
      return -1;
    loop->pfds = p;
    q = realloc (loop->pios, cap * sizeof (*q));
    if (NULL == q)
      return -1;
    loop->pios = q;
    loop->cap_pfd = cap;
  }
  io->pidx = loop->npfd++;
  loop->pfds[io->pidx].fd = io->fd;
  loop->pfds[io->pidx].events = to_poll (want);
  loop->pfds[io->pidx].revents = 0;
  loop->pios[io->pidx] = io;
  return 0;
}


static int
io_mod (struct MHD_WebSocketLoop *loop, struct ws_io *io, unsigned int want)
{
  if (want == io->want)
    return 0;
#ifdef WS_LOOP_EPOLL
  if (! loop->use_poll)
  {
    struct epoll_event ev;

    memset (&ev, 0, sizeof (ev));
    ev.events = to_epoll (want);
    ev.data.ptr = io;
    if (0 != epoll_ctl (loop->epfd, EPOLL_CTL_MOD, io->fd, &ev))
      return -1;
    io->want = want;
    return 0;
  }
#endif
  loop->pfds[io->pidx].events = to_poll (want);
  io->want = want;
  return 0;
}


static void
io_del (struct MHD_WebSocketLoop *loop, struct ws_io *io)
{
#ifdef WS_LOOP_EPOLL
  if (! loop->use_poll)
  {
    (void) epoll_ctl (loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    return;
  }
#endif
  /* The last slot fills the hole.  Events are gathered from the array
     before any is handled, so moving slots during a batch is safe. */
  loop->npfd--;
  if (io->pidx != loop->npfd)
  {
    loop->pfds[io->pidx] = loop->pfds[loop->npfd];
    loop->pios[io->pidx] = loop->pios[loop->npfd];
    loop->pios[io->pidx]->pidx = io->pidx;
  }
}


/* A ready descriptor: what it is, and IO_IN / IO_OUT (errors and hang-ups
   count as both, so that the next system call reports them). */
struct ws_ready
{
  struct ws_io *io;
  unsigned int events;
};


/** Waits up to @a timeout ms; fills @a out, returns how many. */
static int
io_wait (struct MHD_WebSocketLoop *loop, struct ws_ready *out, int timeout)
{
  int n;

#ifdef WS_LOOP_EPOLL
  if (! loop->use_poll)
  {
    struct epoll_event ev[MAX_EVENTS];
    int i;

    n = epoll_wait (loop->epfd, ev, MAX_EVENTS, timeout);
    for (i = 0; i < n; i++)
    {
      out[i].io = ev[i].data.ptr;
      out[i].events = 0;
      if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        out[i].events |= IO_IN;
      if (ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        out[i].events |= IO_RDHUP;
      if (ev[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        out[i].events |= IO_OUT;
    }
    return (n < 0) ? 0 : n;
  }
#endif
  n = poll (loop->pfds, (nfds_t) loop->npfd, timeout);
  if (n <= 0)
    return 0;
  {
    size_t k;
    int got = 0;

    for (k = 0; (k < loop->npfd) && (got < MAX_EVENTS); k++)
    {
      short r = loop->pfds[k].revents;

      if (0 == r)
        continue;
      out[got].io = loop->pios[k];
      out[got].events = 0;
      if (r & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
        out[got].events |= IO_IN;
      if (r
          & (POLLHUP | POLLERR | POLLNVAL
#ifdef WS_HAVE_RDHUP
             | POLLRDHUP
#endif
             ))
        out[got].events |= IO_RDHUP;
      if (r & (POLLOUT | POLLHUP | POLLERR | POLLNVAL))
        out[got].events |= IO_OUT;
      got++;
    }
    return got;
  }
}


/* ---------------------------------------------------------------- deadlines */

static void
heap_swap (struct MHD_WebSocketLoop *loop, size_t a, size_t b)
{
  struct ws_heap_node *t = loop->heap[a];

  loop->heap[a] = loop->heap[b];
  loop->heap[b] = t;
  loop->heap[a]->index = a;
  loop->heap[b]->index = b;
}


static void
heap_up (struct MHD_WebSocketLoop *loop, size_t i)
{
  while (i > 0)
  {
    size_t parent = (i - 1) / 2;

    if (loop->heap[parent]->when <= loop->heap[i]->when)
      break;
    heap_swap (loop, parent, i);
    i = parent;
  }
}


static void
heap_down (struct MHD_WebSocketLoop *loop, size_t i)
{
  for (;;)
  {
    size_t l = 2 * i + 1;
    size_t r = l + 1;
    size_t least = i;

    if ((l < loop->heap_len) && (loop->heap[l]->when < loop->heap[least]->when))
      least = l;
    if ((r < loop->heap_len) && (loop->heap[r]->when < loop->heap[least]->when))
      least = r;
    if (least == i)
      return;
    heap_swap (loop, i, least);
    i = least;
  }
}


static void
heap_remove (struct MHD_WebSocketLoop *loop, struct ws_heap_node *n)
{
  size_t i = n->index;

  if (NOT_IN_HEAP == i)
    return;
  n->index = NOT_IN_HEAP;
  loop->heap_len--;
  if (i == loop->heap_len)
    return;
  loop->heap[i] = loop->heap[loop->heap_len];
  loop->heap[i]->index = i;
  heap_up (loop, i);
  heap_down (loop, loop->heap[i]->index);
}


/**
 * Puts @a n in the heap at @a when (NEVER: takes it out).
 *
 * @return 0, or -1 without memory (then it is not in the heap)
 */
static int
heap_set (struct MHD_WebSocketLoop *loop, struct ws_heap_node *n,
          unsigned long long when)
{
  if (NEVER == when)
  {
    heap_remove (loop, n);
    return 0;
  }
  if (NOT_IN_HEAP != n->index)
  {
    unsigned long long old = n->when;

    n->when = when;
    if (when < old)
      heap_up (loop, n->index);
    else if (when > old)
      heap_down (loop, n->index);
    return 0;
  }
  if (loop->heap_len == loop->heap_cap)
  {
    size_t cap = (0 == loop->heap_cap) ? 64 : 2 * loop->heap_cap;
    struct ws_heap_node **h = realloc (loop->heap, cap * sizeof (*h));

    if (NULL == h)
      return -1;
    loop->heap = h;
    loop->heap_cap = cap;
  }
  n->when = when;
  n->index = loop->heap_len;
  loop->heap[loop->heap_len++] = n;
  heap_up (loop, n->index);
  return 0;
}


/* ---------------------------------------------------------------- ids */

static size_t
id_bucket (const struct MHD_WebSocketLoop *loop, unsigned long long id)
{
  /* Ids of one loop step by nloops: divide that out first. */
  return (size_t) (id / loop->srv->nloops) & (loop->nbuckets - 1);
}


/* Under loop->lock. */
static struct ws_conn *
id_find (struct MHD_WebSocketLoop *loop, unsigned long long id)
{
  struct ws_conn *c;

  if (0 == loop->nbuckets)
    return NULL;
  for (c = loop->buckets[id_bucket (loop, id)]; NULL != c; c = c->hnext)
    if (c->id == id)
      return c;
  return NULL;
}


/* Under loop->lock; 0 or -1 without memory. */
static int
id_insert (struct MHD_WebSocketLoop *loop, struct ws_conn *c)
{
  if (loop->nids >= loop->nbuckets)
  {
    size_t n = (0 == loop->nbuckets) ? 256 : 2 * loop->nbuckets;
    struct ws_conn **b = calloc (n, sizeof (*b));
    size_t i;
    size_t old = loop->nbuckets;

    if (NULL == b)
    {
      if (0 == loop->nbuckets)
        return -1;
    }
    else
    {
      struct ws_conn **ob = loop->buckets;

      loop->buckets = b;
      loop->nbuckets = n;
      for (i = 0; i < old; i++)
        while (NULL != ob[i])
        {
          struct ws_conn *x = ob[i];
          size_t k = id_bucket (loop, x->id);

          ob[i] = x->hnext;
          x->hnext = b[k];
          b[k] = x;
        }
      free (ob);
    }
  }
  {
    size_t k = id_bucket (loop, c->id);

    c->hnext = loop->buckets[k];
    loop->buckets[k] = c;
    loop->nids++;
  }
  return 0;
}


/* Under loop->lock. */
static void
id_remove (struct MHD_WebSocketLoop *loop, struct ws_conn *c)
{
  struct ws_conn **p;

  if (0 == loop->nbuckets)
    return;
  for (p = &loop->buckets[id_bucket (loop, c->id)]; NULL != *p;
       p = &(*p)->hnext)
    if (*p == c)
    {
      *p = c->hnext;
      loop->nids--;
      return;
    }
}


/* ---------------------------------------------------------------- tasks */

/**
 * Queues @a t for @a loop's thread and wakes it.
 *
 * @return 0, or -1 when the loop has ended (@a t is untouched)
 */
static int
task_post (struct MHD_WebSocketLoop *loop, struct ws_task *t)
{
  int wake = 0;

  t->next = NULL;
  pthread_mutex_lock (&loop->lock);
  if (loop->ended)
  {
    pthread_mutex_unlock (&loop->lock);
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
  {
    char one = 1;

    (void) ! write (loop->wake_wr, &one, 1);
  }
  return 0;
}


static void
run_tasks (struct MHD_WebSocketLoop *loop, int live)
{
  struct ws_task *t;
  char drain[64];

  while (read (loop->wake.fd, drain, sizeof (drain)) > 0)
    ;
  pthread_mutex_lock (&loop->lock);
  t = loop->tasks_head;
  loop->tasks_head = loop->tasks_tail = NULL;
  pthread_mutex_unlock (&loop->lock);
  while (NULL != t)
  {
    struct ws_task *next = t->next;

    t->run (loop, t, live);
    t = next;
  }
}


/* ---------------------------------------------------------------- connections */

static void
conn_mark_dirty (struct ws_conn *c)
{
  if (c->dirty || c->settling)
    return;
  c->dirty = 1;
  c->next_dirty = c->loop->dirty;
  c->loop->dirty = c;
}


/* The session's wake hook: output was queued. */
static void
conn_wake (void *arg)
{
  conn_mark_dirty (arg);
}


/* The session's callbacks go through these, which find the
   application's closure and keep the loop's books. */
static void
loop_on_message (void *cls, struct MHD_WebSocketSession *session,
                 enum MHD_WEBSOCKET_STATUS type, const char *data, size_t len)
{
  struct ws_conn *c = cls;
  struct MHD_WebSocketServer *srv = c->loop->srv;

  if (MHD_WEBSOCKET_STATUS_CLOSE_FRAME == type)
    c->peer_closed = 1;
  if (NULL != srv->app_message)
    srv->app_message (c->user, session, type, data, len);
}


static void
loop_on_end (void *cls, struct MHD_WebSocketSession *session,
             enum MHD_WEBSOCKET_END_REASON reason, unsigned short code)
{
  struct ws_conn *c = cls;
  struct MHD_WebSocketServer *srv = c->loop->srv;

  /* Whatever the peer answered to our 1001, the server stopped it. */
  if (c->shutdown && (MHD_WEBSOCKET_END_ERROR != reason))
    reason = MHD_WEBSOCKET_END_SHUTDOWN;
  /* From now on its id reports NO_CONNECTION, also while the socket
     lingers for the peer's FIN. */
  pthread_mutex_lock (&c->loop->lock);
  id_remove (c->loop, c);
  pthread_mutex_unlock (&c->loop->lock);
  if (NULL != srv->app_end)
    srv->app_end (c->user, session, reason, code);
  /* The socket goes when the dirty list is settled. */
  conn_mark_dirty (c);
}


void
ws_server_drop_user (struct MHD_WebSocketServer *server, void *user,
                     enum MHD_WEBSOCKET_END_REASON reason)
{
  if (NULL != server->app_end)
    server->app_end (user, NULL, reason, 0);
}


void
ws_release_upgraded (struct MHD_UpgradeResponseHandle *urh, int tls_fd)
{
  /* With TLS libmicrohttpd relays through a socketpair and ends the TCP
     connection only once its relay has seen an end of our socket and an
     end of the client's input.  MHD_UPGRADE_ACTION_CLOSE shuts our
     socket down before it marks the handle closed, and the relay thread,
     woken in between, takes that for a plain end of our output and then
     waits for the client (0.9.75 and 1.0.1 alike), which waits for us.
     Shutting down the reading side of the TCP socket first ends the
     client's input for the relay (nothing is sent, what we wrote is
     still relayed), so the relay finishes in either order. */
  if (tls_fd >= 0)
    (void) shutdown (tls_fd, SHUT_RD);
  MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
}


/**
 * Ends the connection: the session is freed (its end event runs if it
 * had not), the socket goes back to libmicrohttpd, exactly once, and
 * the memory is freed.  Only from settle(), between batches.
 */
static void
conn_end (struct ws_conn *c)
{
  struct MHD_WebSocketLoop *loop = c->loop;

  c->settling = 1;
  if (c->dirty)
  {
    struct ws_conn **p;

    for (p = &loop->dirty; NULL != *p; p = &(*p)->next_dirty)
      if (*p == c)
      {
        *p = c->next_dirty;
        break;
      }
  }
  /* Before the socket goes back: libmicrohttpd closes the TCP socket. */
  if (c->hup_on)
  {
    io_del (loop, &c->hup);
    c->hup_on = 0;
  }
  if (c->in_list)
  {
    io_del (loop, &c->io);
    if (NULL != c->prev)
      c->prev->next = c->next;
    else
      loop->conns = c->next;
    if (NULL != c->next)
      c->next->prev = c->prev;
    loop->nconns--;
  }
  heap_remove (loop, &c->deadline);
  pthread_mutex_lock (&loop->lock);
  id_remove (loop, c);
  pthread_mutex_unlock (&loop->lock);
  if (NULL != c->session)
    MHD_websocket_session_free (c->session);
  else
  {
    if (NULL != c->ws)
      MHD_websocket_stream_free (c->ws);
    ws_server_drop_user (loop->srv, c->user, MHD_WEBSOCKET_END_ERROR);
  }
  /* From here on the socket is libmicrohttpd's, which closes it. */
  ws_release_upgraded (c->urh, c->tls_fd);
  free (c->extra);
  free (c);
}


/**
 * Writes the session's pending output: all of it in one writev() when
 * the socket takes it.
 */
static void
conn_flush (struct ws_conn *c)
{
  struct MHD_WebSocketSession *s = c->session;

  while (MHD_websocket_session_want_write (s))
  {
    struct MHD_WebSocketChunk ch[MAX_IOV];
    struct iovec iov[MAX_IOV];
    struct msghdr msg;
    unsigned int n = MHD_websocket_session_pending (s, ch, MAX_IOV);
    unsigned int i;
    size_t total = 0;
    ssize_t sent;

    if (0 == n)
      break;
    for (i = 0; i < n; i++)
    {
      iov[i].iov_base = (void *) (uintptr_t) ch[i].data;
      iov[i].iov_len = ch[i].len;
      total += ch[i].len;
    }
    /* One frame (a broadcast's, or an echo) takes the shorter path of
       send(): no iovec array to import. */
    if (1 == n)
      sent = send (c->io.fd, ch[0].data, ch[0].len, MSG_NOSIGNAL);
    else
    {
      memset (&msg, 0, sizeof (msg));
      msg.msg_iov = iov;
      msg.msg_iovlen = n;
      sent = sendmsg (c->io.fd, &msg, MSG_NOSIGNAL);
    }
    if (sent < 0)
    {
      if (EINTR == errno)
        continue;
      if ((EAGAIN == errno) || (EWOULDBLOCK == errno))
        break;
      c->eof = 1; /* the socket failed: nothing to linger for */
      MHD_websocket_session_eof (s, 1, c->loop->now);
      return;
    }
    MHD_websocket_session_sent (s, (size_t) sent, c->loop->now);
    if ((size_t) sent < total)
      break; /* the socket is full: wait for it */
  }
  /* Over wss:// the socket is one end of libmicrohttpd's relay, which
     passes no half-close on to the client: the client would never see
     the connection end.  There the connection ends when the peer's
     close has come too (the session's end). */
  if (! c->wr_shut && (c->tls_fd < 0) && MHD_websocket_session_write_done (s))
  {
    /* Our close frame is out: a FIN after it, while the peer finishes. */
    (void) shutdown (c->io.fd, SHUT_WR);
    c->wr_shut = 1;
  }
}


/**
 * Sets an open connection's deadline, lazily.  The idle ping and the idle
 * timeout move later with every message the peer sends, and moving the
 * node down a heap of thousands on every message cost more user time
 * than the rest of an echo (heap_down, 1 us of 2.9 per echo at 15,000
 * connections).  So a later deadline leaves the node where it is: it
 * fires early, the session's tick finds nothing due, and settling puts
 * the node at the real deadline.  An earlier one moves it at once.
 */
static int
conn_set_deadline (struct ws_conn *c, unsigned long long when)
{
  if ((NOT_IN_HEAP != c->deadline.index) && (NEVER != when)
      && (when > c->deadline.when))
    return 0;
  return heap_set (c->loop, &c->deadline, when);
}


/**
 * Whether libmicrohttpd's TLS relay has yet to read bytes we wrote to
 * the socket pair.  Handing the socket back ends the relay's input from
 * the client first (ws_release_upgraded), and libmicrohttpd 0.9.75 reads
 * the client before it forwards what it read from us: the client's end,
 * read first, fails the TLS session, and our last frame (the close) is
 * lost.  What the relay has read it forwards in the same pass, so once
 * the socket pair is empty the socket can go back.
 */
static int
relay_holds_output (const struct ws_conn *c)
{
#if defined(TIOCOUTQ)
  int unread = 0;

  if ((c->tls_fd < 0) || c->eof)
    return 0;
  return (0 == ioctl (c->io.fd, TIOCOUTQ, &unread)) && (unread > 0);
#else
  (void) c;
  return 0;
#endif
}


/**
 * Brings a connection that was touched up to date: writes, ends it if
 * its session has ended, and registers its interest and deadline.
 *
 * @return 1 when the connection has ended (and is freed), 0 otherwise
 */
static int
conn_settle (struct ws_conn *c)
{
  struct MHD_WebSocketSession *s = c->session;
  unsigned int want = 0;

  /* Cut off, or ended with the peer gone (nothing left to drain). */
  if (c->cut || (c->eof && MHD_websocket_session_ended (s)))
  {
    conn_end (c);
    return 1;
  }
  if (c->draining)
    return 0;
  if (! MHD_websocket_session_ended (s))
    conn_flush (c);
  if (MHD_websocket_session_ended (s))
  {
    /* Until the relay has our last bytes, or the close timeout. */
    if (! c->relay_wait)
      c->relay_until = c->loop->now + c->loop->srv->config->close_timeout_ms;
    if ((c->loop->now < c->relay_until) && relay_holds_output (c))
    {
      c->relay_wait = 1;
      if ((0 == io_mod (c->loop, &c->io, 0))
          && (0
              == heap_set (c->loop, &c->deadline,
                           c->loop->now + RELAY_POLL_MS)))
        return 0;
    }
    /* Without the peer's close the session ended by a timeout or an
       error, after the wait already. */
    if (! c->wr_shut || c->eof || ! c->peer_closed)
    {
      conn_end (c);
      return 1;
    }
    /* Linger: read what the peer still sends until its FIN. */
    c->draining = 1;
    if ((0 != io_mod (c->loop, &c->io, IO_IN))
        || (0
            != heap_set (c->loop, &c->deadline,
                         c->loop->now
                           + c->loop->srv->config->close_timeout_ms)))
    {
      conn_end (c);
      return 1;
    }
    return 0;
  }
  if (MHD_websocket_session_want_read (s))
    want |= IO_IN;
  if (MHD_websocket_session_want_write (s))
    want |= IO_OUT;
  {
    unsigned long long next = MHD_websocket_session_next_deadline (s);

    if (c->peer_gone && (c->gone_deadline < next))
      next = c->gone_deadline;
    if ((0 != io_mod (c->loop, &c->io, want))
        || (0 != conn_set_deadline (c, next)))
      want = (unsigned int) -1;
  }
  if ((unsigned int) -1 == want)
  {
    MHD_websocket_session_eof (s, 1, c->loop->now);
    conn_end (c);
    return 1;
  }
  return 0;
}


/** One read on a readable connection. */
static void
conn_read (struct ws_conn *c)
{
  struct MHD_WebSocketLoop *loop = c->loop;
  ssize_t got;

  got = recv (c->io.fd, loop->rbuf, READ_BUFFER_SIZE, 0);
  if ((got < 0)
      && ((EINTR == errno) || (EAGAIN == errno) || (EWOULDBLOCK == errno)))
    return;
  if (got <= 0)
    c->eof = 1;
  else if (c->peer_gone)
    c->gone_deadline = loop->now + RELAY_DRAIN_MS;
  if (c->draining)
  {
    c->drained += (got > 0) ? (unsigned long long) got : 0;
    if (c->eof || (c->drained > DRAIN_MAX_BYTES))
    {
      c->cut = 1;
      conn_mark_dirty (c);
    }
    return;
  }
  if (MHD_websocket_session_ended (c->session))
  {
    conn_mark_dirty (c);
    return;
  }
  if ((got > 0) && (c->tls_fd >= 0)
      && MHD_websocket_session_write_done (c->session)
      && (MHD_WEBSOCKET_VALIDITY_INVALID
          == MHD_websocket_stream_is_valid (
            MHD_websocket_session_stream (c->session))))
  {
    /* Our close (after a protocol error of the peer) is out, and over
       wss:// there is no FIN to wait for: the stream cannot decode any
       more, so whatever comes now is taken for the peer's answer. */
    c->eof = 1;
    MHD_websocket_session_eof (c->session, 0, loop->now);
    conn_mark_dirty (c);
    return;
  }
  if (got < 0)
    MHD_websocket_session_eof (c->session, 1, loop->now);
  else if (0 == got)
    MHD_websocket_session_eof (c->session, 0, loop->now);
  else
    (void) MHD_websocket_session_receive (c->session, loop->rbuf, (size_t) got,
                                          loop->now);
  conn_mark_dirty (c);
}


/* ---------------------------------------------------------------- adoption */

struct adopt_task
{
  struct ws_task task;
  struct ws_conn *c;
};


static void
adopt_run (struct MHD_WebSocketLoop *loop, struct ws_task *t, int live)
{
  struct ws_conn *c = ((struct adopt_task *) (void *) t)->c;
  struct MHD_WebSocketServer *srv = loop->srv;
  struct MHD_WebSocketStream *ws = c->ws;
  int flags;

  free (t);
  c->loop = loop;
  if (! live)
  {
    /* Posted just before the loop ended: nobody will serve it. */
    pthread_mutex_lock (&loop->lock);
    id_remove (loop, c);
    pthread_mutex_unlock (&loop->lock);
    if (NULL != ws)
      MHD_websocket_stream_free (ws);
    ws_server_drop_user (srv, c->user, MHD_WEBSOCKET_END_SHUTDOWN);
    ws_release_upgraded (c->urh, c->tls_fd);
    free (c->extra);
    free (c);
    return;
  }
  loop->now = clock_ms ();
  c->ws = NULL;
  /* libmicrohttpd may hand over a blocking socket or a non-blocking
     one, depending on its version and mode: make sure. */
  flags = fcntl (c->io.fd, F_GETFL);
  if ((flags < 0) || (0 != fcntl (c->io.fd, F_SETFL, flags | O_NONBLOCK)))
  {
    c->ws = ws;
    conn_end (c);
    return;
  }
  /* The stream is the session's now, also when this fails. */
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_session_create (&c->session, ws, srv->config, c,
                                       loop->now))
  {
    c->session = NULL;
    conn_end (c);
    return;
  }
  /* Whoever queues output on the session, in this loop's thread, the
     connection is then written. */
  c->session->wake = conn_wake;
  c->session->wake_arg = c;
  if (0 != io_add (loop, &c->io, IO_IN))
  {
    conn_end (c);
    return;
  }
#ifdef WS_HAVE_RDHUP
  /* libmicrohttpd's relay stops reading a TLS client that ended its TCP
     stream but does not end our socket: such a connection would be
     noticed only at the idle timeout, where ws:// reads an EOF at once.
     So the client's socket is watched too, for its end only (nothing is
     read there). */
  if (c->tls_fd >= 0)
  {
    c->hup.kind = IO_HUP;
    c->hup.fd = c->tls_fd;
    if (0 == io_add (loop, &c->hup, IO_RDHUP))
      c->hup_on = 1;
  }
#endif
  c->in_list = 1;
  c->next = loop->conns;
  if (NULL != loop->conns)
    loop->conns->prev = c;
  loop->conns = c;
  loop->nconns++;
  conn_mark_dirty (c);
  if (NULL != srv->app_open)
    srv->app_open (c->user, c->session);
  if (loop->stopping)
  {
    c->shutdown = 1;
    (void) MHD_websocket_session_close (
      c->session, MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY, srv->shutdown_reason);
  }
  else if (c->extra_len > 0)
    (void) MHD_websocket_session_receive (c->session, c->extra, c->extra_len,
                                          loop->now);
  free (c->extra);
  c->extra = NULL;
  c->extra_len = 0;
}


_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_server_adopt (struct MHD_WebSocketServer *server, int sock,
                            struct MHD_UpgradeResponseHandle *urh,
                            const char *extra_in, size_t extra_in_size,
                            struct MHD_WebSocketStream *ws, void *user,
                            unsigned long long *id)
{
  return ws_server_adopt (server, sock, -1, urh, extra_in, extra_in_size, ws,
                          user, id);
}


enum MHD_WEBSOCKET_STATUS
ws_server_adopt (struct MHD_WebSocketServer *server, int sock, int tls_fd,
                 struct MHD_UpgradeResponseHandle *urh, const char *extra_in,
                 size_t extra_in_size, struct MHD_WebSocketStream *ws,
                 void *user, unsigned long long *id)
{
  struct ws_conn *c = NULL;
  struct adopt_task *t = NULL;
  struct MHD_WebSocketLoop *loop;
  enum MHD_WEBSOCKET_STATUS status = MHD_WEBSOCKET_STATUS_MEMORY_ERROR;

  if (NULL != id)
    *id = 0;
  if ((NULL == server) || (NULL == urh) || (NULL == ws) || (sock < 0)
      || ! server->started || (0 == server->nloops)
      || ((NULL == extra_in) && (0 != extra_in_size)))
  {
    status = MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    goto fail;
  }
  c = calloc (1, sizeof (*c));
  t = malloc (sizeof (*t));
  if ((NULL == c) || (NULL == t))
    goto fail;
  if (extra_in_size > 0)
  {
    c->extra = malloc (extra_in_size);
    if (NULL == c->extra)
      goto fail;
    memcpy (c->extra, extra_in, extra_in_size);
    c->extra_len = extra_in_size;
  }
  c->io.kind = IO_CONN;
  c->io.fd = sock;
  c->tls_fd = tls_fd;
  c->deadline.index = NOT_IN_HEAP;
  c->deadline.is_conn = 1;
  c->urh = urh;
  c->ws = ws;
  c->user = user;
  c->id = __atomic_add_fetch (&server->last_id, 1, __ATOMIC_RELAXED);
  loop = &server->loops[c->id % server->nloops];
  c->loop = loop;
  pthread_mutex_lock (&loop->lock);
  if (loop->ended || (0 != id_insert (loop, c)))
  {
    status = loop->ended ? MHD_WEBSOCKET_STATUS_PARAMETER_ERROR
                         : MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
    pthread_mutex_unlock (&loop->lock);
    goto fail;
  }
  pthread_mutex_unlock (&loop->lock);
  t->task.run = &adopt_run;
  t->c = c;
  if (0 != task_post (loop, &t->task))
  {
    pthread_mutex_lock (&loop->lock);
    id_remove (loop, c);
    pthread_mutex_unlock (&loop->lock);
    status = MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    goto fail;
  }
  if (NULL != id)
    *id = c->id;
  return MHD_WEBSOCKET_STATUS_OK;

fail:
  if (NULL != c)
    free (c->extra);
  free (c);
  free (t);
  if (NULL != ws)
    MHD_websocket_stream_free (ws);
  if (NULL != server)
    ws_server_drop_user (server, user,
                         MHD_WEBSOCKET_STATUS_PARAMETER_ERROR == status
                           ? MHD_WEBSOCKET_END_SHUTDOWN
                           : MHD_WEBSOCKET_END_ERROR);
  if (NULL != urh)
    ws_release_upgraded (urh, tls_fd);
  return status;
}


/* ---------------------------------------------------------------- the loop */

/* Every timer and session deadline that is due. */
static void
fire_deadlines (struct MHD_WebSocketLoop *loop)
{
  while ((loop->heap_len > 0) && (loop->heap[0]->when <= loop->now))
  {
    struct ws_heap_node *n = loop->heap[0];

    heap_remove (loop, n);
    if (n->is_conn)
    {
      struct ws_conn *c =
        (struct ws_conn *) (void *) ((char *) n
                                     - offsetof (struct ws_conn, deadline));

      if (c->draining)
        c->cut = 1; /* the close timeout passed without the peer's FIN */
      else if (c->peer_gone && (loop->now >= c->gone_deadline))
      {
        /* A relayed client ended its TCP stream, and the relay brought
           what it had sent before: the end of its byte stream. */
        c->eof = 1;
        MHD_websocket_session_eof (c->session, 0, loop->now);
      }
      else if (! c->relay_wait)
        MHD_websocket_session_tick (c->session, loop->now);
      /* (With relay_wait, settling looks again at the relay.) */
      conn_mark_dirty (c);
    }
    else
    {
      struct MHD_WebSocketTimer *t =
        (struct MHD_WebSocketTimer *) (void *) ((char *) n
                                                - offsetof (
                                                  struct MHD_WebSocketTimer,
                                                  node));

      t->cb (t, t->arg);
    }
  }
}


static void
free_dead_watches (struct MHD_WebSocketLoop *loop)
{
  while (NULL != loop->dead_watches)
  {
    struct MHD_WebSocketWatch *w = loop->dead_watches;

    loop->dead_watches = w->next_dead;
    free (w);
  }
}


/* Asks for what a walk of a list of connections needs of @a n, the
   next one, which the previous step asked for: its session's lines, and
   @a after, the connection after it.  A broadcast walks thousands of
   connections that are not in the cache, once to queue and once to
   write; asked for one step ahead, they come while this step works
   (the write is a system call). */
static void
conn_prefetch (const struct ws_conn *n, const struct ws_conn *after)
{
  if (NULL != n->session)
    ws_session_prefetch (n->session);
  WS_PREFETCH (after);
}


/* Settles every connection on the dirty list, also those that settling
   others puts on it (an end event that broadcasts a leave). */
static void
settle (struct MHD_WebSocketLoop *loop)
{
  while (NULL != loop->dirty)
  {
    struct ws_conn *c = loop->dirty;

    if (NULL != c->next_dirty)
      conn_prefetch (c->next_dirty, c->next_dirty->next_dirty);
    loop->dirty = c->next_dirty;
    c->dirty = 0;
    c->settling = 1;
    if (0 == conn_settle (c))
      c->settling = 0;
  }
}


static void *
loop_main (void *cls)
{
  struct MHD_WebSocketLoop *loop = cls;
  struct MHD_WebSocketServer *srv = loop->srv;
  struct ws_ready ready[MAX_EVENTS];

  current_loop = loop;
#if defined(__linux__)
  {
    /* Named, so that tools and tests can tell the loops apart. */
    char name[16];

    snprintf (name, sizeof (name), "mhdws-loop-%u", loop->index);
    (void) pthread_setname_np (pthread_self (), name);
  }
#endif
  loop->now = clock_ms ();
  if (NULL != srv->loop_cb)
    srv->loop_cb (srv->loop_cls, loop, 1);
  for (;;)
  {
    int timeout = -1;
    unsigned long long next = NEVER;
    int n;
    int i;

    if (loop->heap_len > 0)
      next = loop->heap[0]->when;
    if (loop->stopping && (loop->stop_deadline < next))
      next = loop->stop_deadline;
    if (NULL != loop->dirty)
      timeout = 0;
    else if (NEVER != next)
      timeout = (next <= loop->now)                ? 0
                : (next - loop->now > 86400000ULL) ? 86400000
                                                   : (int) (next - loop->now);
    n = io_wait (loop, ready, timeout);
    loop->now = clock_ms ();
    for (i = 0; i < n; i++)
    {
      struct ws_io *io = ready[i].io;

      if (IO_WAKE == io->kind)
        run_tasks (loop, 1);
      else if (IO_HUP == io->kind)
      {
        struct ws_conn *c =
          (struct ws_conn *) (void *) ((char *) io
                                       - offsetof (struct ws_conn, hup));

        if ((ready[i].events & IO_RDHUP) && c->hup_on)
        {
          /* Once is enough: it stays ready. */
          io_del (loop, &c->hup);
          c->hup_on = 0;
          c->peer_gone = 1;
          c->gone_deadline = loop->now + RELAY_DRAIN_MS;
          conn_mark_dirty (c);
        }
      }
      else if (IO_WATCH == io->kind)
      {
        struct MHD_WebSocketWatch *w = (struct MHD_WebSocketWatch *) io;
        int ev = 0;

        if (ready[i].events & IO_IN)
          ev |= MHD_WEBSOCKET_WATCH_READ;
        if (ready[i].events & IO_OUT)
          ev |= MHD_WEBSOCKET_WATCH_WRITE;
        ev &= w->events;
        if (0 != ev)
          w->cb (w, ev, w->arg);
      }
      else
      {
        struct ws_conn *c = (struct ws_conn *) io;

        /* Connections end only in settle(), after the batch. */
        if (ready[i].events & IO_OUT)
          conn_mark_dirty (c);
        if (ready[i].events & IO_IN)
          conn_read (c);
      }
    }
    free_dead_watches (loop);
    fire_deadlines (loop);
    if (loop->stopping && (loop->now >= loop->stop_deadline))
    {
      struct ws_conn *c;

      for (c = loop->conns; NULL != c; c = c->next)
      {
        c->cut = 1;
        conn_mark_dirty (c);
      }
    }
    settle (loop);
    if (loop->stopping && (NULL == loop->conns))
      break;
  }
  /* No more tasks can arrive; those already posted release what they
     hold (adoptions give their sockets back). */
  pthread_mutex_lock (&loop->lock);
  loop->ended = 1;
  pthread_mutex_unlock (&loop->lock);
  run_tasks (loop, 0);
  free_dead_watches (loop);
  current_loop = NULL;
  return NULL;
}


/* ---------------------------------------------------------------- server */

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_server_create (struct MHD_WebSocketServer **server,
                             const struct MHD_WebSocketSessionConfig *config)
{
  struct MHD_WebSocketServer *srv;

  if (NULL == server)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  *server = NULL;
  if (NULL == config)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  srv = calloc (1, sizeof (*srv));
  if (NULL == srv)
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  /* A copy, with the loop's callbacks in place of the application's. */
  srv->config = MHD_websocket_session_config_create ();
  if (NULL != srv->config)
    *srv->config = *config;
  srv->shutdown_reason = strdup ("server shutting down");
  if ((NULL == srv->config) || (NULL == srv->shutdown_reason))
  {
    if (NULL != srv->config)
      MHD_websocket_session_config_free (srv->config);
    free (srv->shutdown_reason);
    free (srv);
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  }
  srv->app_message = config->message_cb;
  srv->app_end = config->end_cb;
  MHD_websocket_session_config_set_callbacks (srv->config, &loop_on_message,
                                              &loop_on_end);
  srv->set.deflate = 1;
#ifndef WS_LOOP_EPOLL
  srv->use_poll = 1;
#endif
  *server = srv;
  return MHD_WEBSOCKET_STATUS_OK;
}


_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_server_set (struct MHD_WebSocketServer *server,
                          enum MHD_WEBSOCKET_SERVER_OPTION option,
                          unsigned long long value)
{
  if ((NULL == server) || server->started)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  switch (option)
  {
  case MHD_WEBSOCKET_SERVER_OPTION_THREADS:
    if (value > 1024)
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    server->threads = (unsigned int) value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SERVER_OPTION_MAX_PAYLOAD:
    if (value > 0x7FFFFFFFFFFFFFFFULL)
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    server->set.max_payload = value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SERVER_OPTION_DEFLATE:
    if (value > 1)
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    server->set.deflate = (int) value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SERVER_OPTION_DEFLATE_FLAGS:
    if (
      value
      & ~(
        unsigned long long) (MHD_WEBSOCKET_DEFLATE_FLAG_SERVER_NO_CONTEXT_TAKEOVER
                             | MHD_WEBSOCKET_DEFLATE_FLAG_CLIENT_NO_CONTEXT_TAKEOVER))
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    server->set.deflate_flags = (int) value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SERVER_OPTION_USE_POLL:
    if (value > 1)
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
#ifdef WS_LOOP_EPOLL
    server->use_poll = (int) value;
#endif
    return MHD_WEBSOCKET_STATUS_OK;
  }
  return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
}


_MHD_EXTERN void
MHD_websocket_server_set_loop_callback (struct MHD_WebSocketServer *server,
                                        MHD_WebSocketLoopCallback cb, void *cls)
{
  if ((NULL == server) || server->started)
    return;
  server->loop_cb = cb;
  server->loop_cls = cls;
}


_MHD_EXTERN void
MHD_websocket_server_set_open_callback (struct MHD_WebSocketServer *server,
                                        MHD_WebSocketOpenCallback cb)
{
  if ((NULL == server) || server->started)
    return;
  server->app_open = cb;
}


const struct ws_server_settings *
ws_server_settings (const struct MHD_WebSocketServer *server)
{
  return &server->set;
}


/* Sets up loop @a i (not its thread); 0 or -1. */
static int
loop_init (struct MHD_WebSocketServer *srv, unsigned int i)
{
  struct MHD_WebSocketLoop *loop = &srv->loops[i];
  int p[2];

  loop->srv = srv;
  loop->index = i;
  loop->epfd = -1;
  loop->wake.fd = -1;
  loop->wake_wr = -1;
  loop->wake.kind = IO_WAKE;
  loop->use_poll = srv->use_poll;
  pthread_mutex_init (&loop->lock, NULL);
  loop->rbuf = malloc (READ_BUFFER_SIZE);
  if (NULL == loop->rbuf)
    return -1;
  if (0 != pipe (p))
    return -1;
  loop->wake.fd = p[0];
  loop->wake_wr = p[1];
  if ((0 != fcntl (p[0], F_SETFL, O_NONBLOCK))
      || (0 != fcntl (p[1], F_SETFL, O_NONBLOCK))
      || (0 != fcntl (p[0], F_SETFD, FD_CLOEXEC))
      || (0 != fcntl (p[1], F_SETFD, FD_CLOEXEC)))
    return -1;
#ifdef WS_LOOP_EPOLL
  if (! loop->use_poll)
  {
    loop->epfd = epoll_create1 (EPOLL_CLOEXEC);
    if (loop->epfd < 0)
      return -1;
  }
#endif
  return io_add (loop, &loop->wake, IO_IN);
}


static void
loop_destroy (struct MHD_WebSocketLoop *loop)
{
  /* Watches freed after the loop ended (an adapter's cleanup). */
  free_dead_watches (loop);
  free (loop->rbuf);
  if (loop->epfd >= 0)
    close (loop->epfd);
  if (loop->wake.fd >= 0)
    close (loop->wake.fd);
  if (loop->wake_wr >= 0)
    close (loop->wake_wr);
  free (loop->pfds);
  free (loop->pios);
  free (loop->heap);
  free (loop->buckets);
  pthread_mutex_destroy (&loop->lock);
}


static void stop_loops (struct MHD_WebSocketServer *srv, unsigned int wait_ms);


_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_server_start (struct MHD_WebSocketServer *server)
{
  unsigned int n;
  unsigned int i;

  if ((NULL == server) || server->started || server->stopped)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  n = server->threads;
  if (0 == n)
  {
    long cpus = sysconf (_SC_NPROCESSORS_ONLN);

    n = (cpus > 0) ? (unsigned int) cpus : 1;
  }
  server->loops = calloc (n, sizeof (*server->loops));
  if (NULL == server->loops)
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  server->nloops = n;
  server->started = 1;
  for (i = 0; i < n; i++)
  {
    struct MHD_WebSocketLoop *loop = &server->loops[i];

    if ((0 != loop_init (server, i))
        || (0 != pthread_create (&loop->thread, NULL, &loop_main, loop)))
    {
      unsigned int k;

      /* Loops already started end at once: nothing is connected yet. */
      server->nloops = i + 1;
      stop_loops (server, 0);
      for (k = 0; k <= i; k++)
        loop_destroy (&server->loops[k]);
      free (server->loops);
      server->loops = NULL;
      server->nloops = 0;
      server->started = 0;
      return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
    }
    loop->thread_started = 1;
  }
  return MHD_WEBSOCKET_STATUS_OK;
}


struct stop_task
{
  struct ws_task task;
  unsigned int wait_ms;
};


static void
stop_run (struct MHD_WebSocketLoop *loop, struct ws_task *t, int live)
{
  struct MHD_WebSocketServer *srv = loop->srv;
  unsigned int wait_ms = ((struct stop_task *) (void *) t)->wait_ms;
  struct ws_conn *c;

  free (t);
  if (! live)
    return;
  if (NULL != srv->loop_cb)
    srv->loop_cb (srv->loop_cls, loop, 0);
  loop->stopping = 1;
  loop->now = clock_ms ();
  loop->stop_deadline = loop->now + wait_ms;
  for (c = loop->conns; NULL != c; c = c->next)
  {
    c->shutdown = 1;
    (void) MHD_websocket_session_close (
      c->session, MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY, srv->shutdown_reason);
    conn_mark_dirty (c);
  }
}


static void
stop_loops (struct MHD_WebSocketServer *srv, unsigned int wait_ms)
{
  unsigned int i;

  for (i = 0; i < srv->nloops; i++)
  {
    struct MHD_WebSocketLoop *loop = &srv->loops[i];
    struct stop_task *t;

    if (! loop->thread_started)
      continue;
    /* Without memory for the task, the loop is told through the
       stack: the thread is joined below, so it outlives the post. */
    t = malloc (sizeof (*t));
    if (NULL == t)
    {
      fprintf (stderr, "libmicrohttpd_ws: no memory to stop a loop\n");
      abort ();
    }
    t->task.run = &stop_run;
    t->wait_ms = wait_ms;
    if (0 != task_post (loop, &t->task))
      free (t);
  }
  for (i = 0; i < srv->nloops; i++)
    if (srv->loops[i].thread_started)
    {
      pthread_join (srv->loops[i].thread, NULL);
      srv->loops[i].thread_started = 0;
    }
}


_MHD_EXTERN void
MHD_websocket_server_stop (struct MHD_WebSocketServer *server,
                           const char *reason, unsigned int wait_ms)
{
  if ((NULL == server) || ! server->started || server->stopped)
    return;
  if (NULL != reason)
  {
    char *r = strdup (reason);

    if (NULL != r)
    {
      free (server->shutdown_reason);
      server->shutdown_reason = r;
    }
  }
  server->stopped = 1;
  stop_loops (server, wait_ms);
}


_MHD_EXTERN void
MHD_websocket_server_free (struct MHD_WebSocketServer *server)
{
  unsigned int i;

  if (NULL == server)
    return;
  if (server->started && ! server->stopped)
    MHD_websocket_server_stop (server, NULL, 0);
  for (i = 0; i < server->nloops; i++)
    loop_destroy (&server->loops[i]);
  free (server->loops);
  MHD_websocket_session_config_free (server->config);
  free (server->shutdown_reason);
  free (server);
}


_MHD_EXTERN unsigned int
MHD_websocket_server_loop_count (const struct MHD_WebSocketServer *server)
{
  return (NULL == server) ? 0 : server->nloops;
}


_MHD_EXTERN struct MHD_WebSocketLoop *
MHD_websocket_server_loop (struct MHD_WebSocketServer *server,
                           unsigned int index)
{
  if ((NULL == server) || (index >= server->nloops))
    return NULL;
  return &server->loops[index];
}


_MHD_EXTERN struct MHD_WebSocketLoop *
MHD_websocket_loop_current (void)
{
  return current_loop;
}


/* ---------------------------------------------------------------- by id */

_MHD_EXTERN unsigned long long
MHD_websocket_server_connection_id (const struct MHD_WebSocketSession *s)
{
  const struct ws_conn *c;

  if (NULL == s)
    return 0;
  c = MHD_websocket_session_get_cls ((struct MHD_WebSocketSession *) s);
  return (NULL == c) ? 0 : c->id;
}


_MHD_EXTERN void
MHD_websocket_server_set_group (struct MHD_WebSocketSession *s,
                                unsigned int group)
{
  struct ws_conn *c;

  if (NULL == s)
    return;
  c = MHD_websocket_session_get_cls (s);
  if (NULL != c)
    c->group = group;
}


/* The loop an id belongs to; NULL for ids never given. */
static struct MHD_WebSocketLoop *
loop_of (struct MHD_WebSocketServer *srv, unsigned long long id)
{
  if ((NULL == srv) || (0 == srv->nloops) || (0 == id)
      || (id > __atomic_load_n (&srv->last_id, __ATOMIC_RELAXED)))
    return NULL;
  return &srv->loops[id % srv->nloops];
}


/* A live connection of the calling loop thread by id, or NULL. */
static struct ws_conn *
own_conn (struct MHD_WebSocketLoop *loop, unsigned long long id)
{
  struct ws_conn *c;

  pthread_mutex_lock (&loop->lock);
  c = id_find (loop, id);
  pthread_mutex_unlock (&loop->lock);
  if ((NULL == c) || (NULL == c->session)
      || MHD_websocket_session_ended (c->session))
    return NULL;
  return c;
}


/* A send or a close for a connection, on its way to its loop. */
struct op_task
{
  struct ws_task task;
  unsigned long long id;
  /* 0 text, 1 binary, 2 close. */
  int op;
  unsigned short code;
  size_t len;
  char data[];
};


static enum MHD_WEBSOCKET_SEND_RESULT
op_apply (struct ws_conn *c, int op, unsigned short code, const char *data,
          size_t len)
{
  enum MHD_WEBSOCKET_SEND_RESULT r;

  if (0 == op)
    r = MHD_websocket_session_send_text (c->session, data, len);
  else if (1 == op)
    r = MHD_websocket_session_send_binary (c->session, data, len);
  else
    r = MHD_websocket_session_close (c->session, code,
                                     (NULL == data) ? NULL : data);
  conn_mark_dirty (c);
  return r;
}


static void
op_run (struct MHD_WebSocketLoop *loop, struct ws_task *t, int live)
{
  struct op_task *o = (struct op_task *) (void *) t;

  if (live)
  {
    struct ws_conn *c = own_conn (loop, o->id);

    if (NULL != c)
      (void) op_apply (c, o->op, o->code,
                       (2 == o->op) && (0 == o->len) ? NULL : o->data, o->len);
  }
  free (o);
}


static enum MHD_WEBSOCKET_SEND_RESULT
by_id (struct MHD_WebSocketServer *srv, unsigned long long id, int op,
       unsigned short code, const char *data, size_t len)
{
  struct MHD_WebSocketLoop *loop = loop_of (srv, id);
  struct op_task *o;

  if (NULL == loop)
    return MHD_WEBSOCKET_SEND_NO_CONNECTION;
  if ((NULL == data) && (0 != len))
    return MHD_WEBSOCKET_SEND_INVALID;
  if (current_loop == loop)
  {
    struct ws_conn *c = own_conn (loop, id);

    if (NULL != c)
      return op_apply (c, op, code, data, len);
  }
  pthread_mutex_lock (&loop->lock);
  o = (NULL == id_find (loop, id)) ? NULL : (void *) loop;
  pthread_mutex_unlock (&loop->lock);
  if (NULL == o)
    return MHD_WEBSOCKET_SEND_NO_CONNECTION;
  if (len > SIZE_MAX - sizeof (*o) - 1)
    return MHD_WEBSOCKET_SEND_MEMORY_ERROR;
  o = malloc (sizeof (*o) + len + 1);
  if (NULL == o)
    return MHD_WEBSOCKET_SEND_MEMORY_ERROR;
  o->task.run = &op_run;
  o->id = id;
  o->op = op;
  o->code = code;
  o->len = len;
  if (len > 0)
    memcpy (o->data, data, len);
  o->data[len] = '\0';
  if (0 != task_post (loop, &o->task))
  {
    free (o);
    return MHD_WEBSOCKET_SEND_NO_CONNECTION;
  }
  return MHD_WEBSOCKET_SEND_OK;
}


_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_server_send (struct MHD_WebSocketServer *server,
                           unsigned long long id, int binary, const char *data,
                           size_t len)
{
  return by_id (server, id, binary ? 1 : 0, 0, data, len);
}


_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_server_close (struct MHD_WebSocketServer *server,
                            unsigned long long id, unsigned short code,
                            const char *reason)
{
  return by_id (server, id, 2, code, reason,
                (NULL == reason) ? 0 : strlen (reason));
}


struct broadcast_task
{
  struct ws_task task;
  struct MHD_WebSocketBroadcast *b;
  unsigned int group;
};


/* The loop's connections get the broadcast through one share of it
   (ws_bc_share_new()): their frames are written and freed on this
   thread only, so they count their references on the share without
   atomics, and this loop leaves the broadcast's own count, which the
   other loops change too, alone until its last frame of it goes.
   Without memory for the share each frame takes a reference of the
   broadcast, as MHD_websocket_session_send_broadcast() does. */
static void
broadcast_local (struct MHD_WebSocketLoop *loop, unsigned int group,
                 struct MHD_WebSocketBroadcast *b)
{
  struct ws_bc_share *share = ws_bc_share_new (b);
  struct ws_conn *c;

  for (c = loop->conns; NULL != c; c = c->next)
  {
    if (NULL != c->next)
      conn_prefetch (c->next, c->next->next);
    if ((MHD_WEBSOCKET_ALL_GROUPS != group) && (c->group != group))
      continue;
    if (MHD_websocket_session_ended (c->session))
      continue;
    (void) ws_session_send_shared (c->session, b, share);
    conn_mark_dirty (c);
  }
  if (NULL != share)
    ws_bc_share_drop (share);
}


static void
broadcast_run (struct MHD_WebSocketLoop *loop, struct ws_task *t, int live)
{
  struct broadcast_task *bt = (struct broadcast_task *) (void *) t;

  if (live)
    broadcast_local (loop, bt->group, bt->b);
  MHD_websocket_broadcast_release (bt->b);
  free (bt);
}


_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_server_broadcast (struct MHD_WebSocketServer *server,
                                unsigned int group,
                                struct MHD_WebSocketBroadcast *broadcast)
{
  unsigned int i;
  enum MHD_WEBSOCKET_STATUS ret = MHD_WEBSOCKET_STATUS_OK;

  if ((NULL == server) || (NULL == broadcast))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  /* The other loops first, so that they work on it while this one
     queues it to its own connections. */
  for (i = 0; i < server->nloops; i++)
  {
    struct MHD_WebSocketLoop *loop = &server->loops[i];
    struct broadcast_task *bt;

    if (loop == current_loop)
      continue;
    bt = malloc (sizeof (*bt));
    if (NULL == bt)
    {
      ret = MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
      continue;
    }
    bt->task.run = &broadcast_run;
    bt->b = broadcast;
    bt->group = group;
    ws_bc_ref (broadcast);
    if (0 != task_post (loop, &bt->task))
    {
      MHD_websocket_broadcast_release (broadcast);
      free (bt);
    }
  }
  /* The caller's own loop gets it now, so that it is queued before
     anything the caller sends next. */
  if ((NULL != current_loop) && (current_loop->srv == server))
    broadcast_local (current_loop, group, broadcast);
  return ret;
}


/* ---------------------------------------------------------------- posts */

struct post_task
{
  struct ws_task task;
  void (*fn) (struct MHD_WebSocketLoop *loop, void *arg);
  void *arg;
};


static void
post_run (struct MHD_WebSocketLoop *loop, struct ws_task *t, int live)
{
  struct post_task *p = (struct post_task *) (void *) t;

  /* Run also when the loop has ended: the function may hold references
     that only it can release; the loop's connections are gone. */
  (void) live;
  p->fn (loop, p->arg);
  free (p);
}


_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_loop_post (struct MHD_WebSocketLoop *loop,
                         void (*fn) (struct MHD_WebSocketLoop *loop, void *arg),
                         void *arg)
{
  struct post_task *p;

  if ((NULL == loop) || (NULL == fn))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  p = malloc (sizeof (*p));
  if (NULL == p)
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  p->task.run = &post_run;
  p->fn = fn;
  p->arg = arg;
  if (0 != task_post (loop, &p->task))
  {
    free (p);
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  }
  return MHD_WEBSOCKET_STATUS_OK;
}


/* ---------------------------------------------------------------- watches */

_MHD_EXTERN struct MHD_WebSocketWatch *
MHD_websocket_watch_create (struct MHD_WebSocketLoop *loop, int fd,
                            void (*cb) (struct MHD_WebSocketWatch *w,
                                        int events, void *arg),
                            void *arg)
{
  struct MHD_WebSocketWatch *w;

  if ((NULL == loop) || (fd < 0) || (NULL == cb))
    return NULL;
  w = calloc (1, sizeof (*w));
  if (NULL == w)
    return NULL;
  w->io.kind = IO_WATCH;
  w->io.fd = fd;
  w->loop = loop;
  w->cb = cb;
  w->arg = arg;
  if (0 != io_add (loop, &w->io, 0))
  {
    free (w);
    return NULL;
  }
  return w;
}


_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_watch_set (struct MHD_WebSocketWatch *w, int events)
{
  unsigned int want = 0;

  if ((NULL == w)
      || (0
          != (events
              & ~(MHD_WEBSOCKET_WATCH_READ | MHD_WEBSOCKET_WATCH_WRITE))))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  if (events & MHD_WEBSOCKET_WATCH_READ)
    want |= IO_IN;
  if (events & MHD_WEBSOCKET_WATCH_WRITE)
    want |= IO_OUT;
  if (0 != io_mod (w->loop, &w->io, want))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  w->events = events;
  return MHD_WEBSOCKET_STATUS_OK;
}


_MHD_EXTERN int
MHD_websocket_watch_events (const struct MHD_WebSocketWatch *w)
{
  return (NULL == w) ? 0 : w->events;
}


_MHD_EXTERN void
MHD_websocket_watch_free (struct MHD_WebSocketWatch *w)
{
  if (NULL == w)
    return;
  io_del (w->loop, &w->io);
  /* An event for it may still be in the current batch: it is ignored
     (no interest) and the memory goes after the batch. */
  w->events = 0;
  w->next_dead = w->loop->dead_watches;
  w->loop->dead_watches = w;
}


/* ---------------------------------------------------------------- timers */

_MHD_EXTERN struct MHD_WebSocketTimer *
MHD_websocket_timer_create (struct MHD_WebSocketLoop *loop,
                            void (*cb) (struct MHD_WebSocketTimer *t,
                                        void *arg),
                            void *arg)
{
  struct MHD_WebSocketTimer *t;

  if ((NULL == loop) || (NULL == cb))
    return NULL;
  t = calloc (1, sizeof (*t));
  if (NULL == t)
    return NULL;
  t->node.index = NOT_IN_HEAP;
  t->loop = loop;
  t->cb = cb;
  t->arg = arg;
  return t;
}


_MHD_EXTERN void
MHD_websocket_timer_arm (struct MHD_WebSocketTimer *t, unsigned long ms)
{
  if (NULL == t)
    return;
  /* Without memory for a larger heap the timer stays disarmed; the
     heap grows in steps, so this only happens when memory is gone. */
  (void) heap_set (t->loop, &t->node, clock_ms () + ms);
}


_MHD_EXTERN void
MHD_websocket_timer_disarm (struct MHD_WebSocketTimer *t)
{
  if (NULL != t)
    heap_remove (t->loop, &t->node);
}


_MHD_EXTERN void
MHD_websocket_timer_free (struct MHD_WebSocketTimer *t)
{
  if (NULL == t)
    return;
  heap_remove (t->loop, &t->node);
  free (t);
}
