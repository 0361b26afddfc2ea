/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file floor.c
 * @brief The floor of make bench-scale: the least work a WebSocket server
 *        can do per echo or per broadcast delivery on this machine.
 *
 * Not a server to use: it does no validation and keeps no limits.  It
 * exists so that the benchmark can say how far examples/echo and
 * examples/chatserver are above the cost that no server can avoid (the
 * kernel's, on loopback, is most of it).
 *
 * One epoll loop per thread (one per CPU by default, as the examples),
 * each with its own listening socket on the same port (SO_REUSEPORT), so
 * no connection crosses threads.  Per connection: accept, read the
 * upgrade request, answer 101 with the Sec-WebSocket-Accept of its key.
 * Then on every readable event: one read, unmask every complete frame
 * in place, and send all of them back with one writev (a frame cut by
 * the read waits for the next read).  The opcode is kept and nothing is
 * checked.
 *
 * On a path that starts with /chat the connection is a broadcast member
 * instead: every frame it sends is built once, unmasked, as a server
 * frame and sent with one send() to every member of this thread; the
 * other threads get a copy of the built frame through their mailbox and
 * do the same for their own members.
 *
 * A peer that does not read fast enough keeps what did not fit in a
 * buffer of its own (echo) or loses it (broadcast: make bench-scale's
 * generator then reports the missing delivery).  A frame larger than
 * the read buffer (64 KiB) ends the connection.
 *
 * usage: floor [-t THREADS] [PORT]   (PORT 0, the default, picks one)
 * Prints "Serving on http://127.0.0.1:PORT/" first, like the examples;
 * stops on SIGTERM or SIGINT (default actions).
 */
#define _GNU_SOURCE 1

#include <microhttpd_ws.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_BUF (64 * 1024)
#define MAX_IOV 1024
#define MAX_REQUEST 4096

struct worker;

struct fconn
{
  int fd;
  int open;      /* the 101 went out: frames now */
  int chat;      /* a broadcast member */
  size_t member; /* its index in the worker's members */
  /* Bytes of an unfinished request or frame, kept for the next read. */
  unsigned char *rest;
  size_t rest_len;
  /* Output that did not fit in the socket (echo only). */
  unsigned char *pend;
  size_t pend_len;
  size_t pend_off;
};

/* A built frame handed to another thread. */
struct post
{
  struct post *next;
  size_t len;
  unsigned char data[];
};

struct worker
{
  pthread_t tid;
  int ep;
  int lfd;
  int efd; /* eventfd: the mailbox has frames */
  pthread_mutex_t lock;
  struct post *mailbox;
  struct fconn **members;
  size_t n_members;
  size_t cap_members;
  unsigned char buf[READ_BUF];
  unsigned char hdr[MAX_IOV / 2][10];
  struct iovec iov[MAX_IOV];
};

static struct worker *workers;
static unsigned n_workers;

/* Tags of the epoll data that are not connections. */
static char listen_tag;
static char mailbox_tag;

static void
drop (struct worker *w, struct fconn *c)
{
  if (c->chat && c->open)
  {
    struct fconn *last = w->members[--w->n_members];

    w->members[c->member] = last;
    last->member = c->member;
  }
  (void) epoll_ctl (w->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close (c->fd);
  free (c->rest);
  free (c->pend);
  free (c);
}

/** Keeps @a len bytes at @a p for the next read; -1 when out of memory. */
static int
keep_rest (struct fconn *c, const unsigned char *p, size_t len)
{
  unsigned char *r = NULL;

  if (0 != len)
  {
    r = malloc (len);
    if (NULL == r)
      return -1;
    memcpy (r, p, len);
  }
  free (c->rest);
  c->rest = r;
  c->rest_len = len;
  return 0;
}

static void
unmask (unsigned char *p, size_t len, const unsigned char key[4])
{
  uint64_t k8;
  uint32_t k4;
  size_t i = 0;

  memcpy (&k4, key, 4);
  k8 = ((uint64_t) k4 << 32) | k4;
  for (; i + 8 <= len; i += 8)
  {
    uint64_t v;

    memcpy (&v, p + i, 8);
    v ^= k8;
    memcpy (p + i, &v, 8);
  }
  for (; i < len; i++)
    p[i] ^= key[i & 3];
}

/** A server frame header (no mask) for @a b0 and @a len into @a h. */
static size_t
server_header (unsigned char *h, unsigned char b0, uint64_t len)
{
  int k;

  h[0] = b0;
  if (len < 126)
  {
    h[1] = (unsigned char) len;
    return 2;
  }
  if (len <= 0xFFFF)
  {
    h[1] = 126;
    h[2] = (unsigned char) (len >> 8);
    h[3] = (unsigned char) len;
    return 4;
  }
  h[1] = 127;
  for (k = 0; k < 8; k++)
    h[2 + k] = (unsigned char) (len >> (56 - 8 * k));
  return 10;
}

/**
 * Parses the client frame header at @a p (@a avail bytes): 0 while it is
 * incomplete, else its length, with the payload's in @a *plen and the
 * key (NULL without a mask) in @a *key.
 */
static size_t
client_header (const unsigned char *p, size_t avail, uint64_t *plen,
               const unsigned char **key)
{
  size_t h = 2;
  uint64_t len;
  int k;

  if (avail < 2)
    return 0;
  len = p[1] & 0x7F;
  if (126 == len)
    h += 2;
  else if (127 == len)
    h += 8;
  if (0 != (p[1] & 0x80))
    h += 4;
  if (avail < h)
    return 0;
  if (126 == len)
    len = ((uint64_t) p[2] << 8) | p[3];
  else if (127 == len)
    for (len = 0, k = 0; k < 8; k++)
      len = (len << 8) | p[2 + k];
  *plen = len;
  *key = (0 != (p[1] & 0x80)) ? p + h - 4 : NULL;
  return h;
}

static void
set_events (struct worker *w, struct fconn *c, uint32_t events)
{
  struct epoll_event ev;

  memset (&ev, 0, sizeof (ev));
  ev.events = events;
  ev.data.ptr = c;
  (void) epoll_ctl (w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/** Sends what is pending; -1 when the connection is broken. */
static int
flush_pend (struct worker *w, struct fconn *c)
{
  while (c->pend_off < c->pend_len)
  {
    ssize_t n = send (c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off,
                      MSG_NOSIGNAL);

    if (n < 0)
      return ((EAGAIN == errno) || (EWOULDBLOCK == errno)) ? 0 : -1;
    c->pend_off += (size_t) n;
  }
  free (c->pend);
  c->pend = NULL;
  c->pend_len = 0;
  c->pend_off = 0;
  set_events (w, c, EPOLLIN);
  return 0;
}

/** Keeps the part of @a iov after @a sent bytes; -1 when out of memory. */
static int
keep_pend (struct worker *w, struct fconn *c, const struct iovec *iov, int n,
           size_t sent)
{
  size_t total = 0;
  int i;

  for (i = 0; i < n; i++)
    total += iov[i].iov_len;
  c->pend = malloc (total - sent);
  if (NULL == c->pend)
    return -1;
  c->pend_len = 0;
  c->pend_off = 0;
  for (i = 0; i < n; i++)
  {
    const unsigned char *b = iov[i].iov_base;
    size_t l = iov[i].iov_len;

    if (sent >= l)
    {
      sent -= l;
      continue;
    }
    memcpy (c->pend + c->pend_len, b + sent, l - sent);
    c->pend_len += l - sent;
    sent = 0;
  }
  /* Nothing more is read from it until this is out. */
  set_events (w, c, EPOLLOUT);
  return 0;
}

/** One send() of the built frame to every member of @a w. */
static void
deliver (struct worker *w, const unsigned char *frame, size_t len)
{
  size_t i;

  for (i = 0; i < w->n_members; i++)
    (void) send (w->members[i]->fd, frame, len, MSG_NOSIGNAL);
}

static void
broadcast (struct worker *w, unsigned char b0, const unsigned char *payload,
           size_t len)
{
  unsigned char *frame = malloc (10 + len);
  size_t flen;
  unsigned i;

  if (NULL == frame)
    return;
  /* Built once; the other threads get copies of the built frame. */
  flen = server_header (frame, b0, len);
  memcpy (frame + flen, payload, len);
  flen += len;
  for (i = 0; i < n_workers; i++)
  {
    struct worker *o = &workers[i];
    struct post *q;

    if (o == w)
      continue;
    q = malloc (sizeof (*q) + flen);
    if (NULL == q)
      continue;
    memcpy (q->data, frame, flen);
    q->len = flen;
    pthread_mutex_lock (&o->lock);
    q->next = o->mailbox;
    o->mailbox = q;
    pthread_mutex_unlock (&o->lock);
    (void) eventfd_write (o->efd, 1);
  }
  deliver (w, frame, flen);
  free (frame);
}

static void
take_mailbox (struct worker *w)
{
  struct post *p;
  eventfd_t v;

  (void) eventfd_read (w->efd, &v);
  pthread_mutex_lock (&w->lock);
  p = w->mailbox;
  w->mailbox = NULL;
  pthread_mutex_unlock (&w->lock);
  while (NULL != p)
  {
    struct post *next = p->next;

    deliver (w, p->data, p->len);
    free (p);
    p = next;
  }
}

/**
 * The request is in @a p (@a len bytes): answers 101 when it is
 * complete.  Returns the bytes it used, 0 while it is incomplete, -1 to
 * drop the connection.
 */
static long
handshake (struct worker *w, struct fconn *c, unsigned char *p, size_t len)
{
  char *req = (char *) p;
  char *end;
  char *key;
  char *eol;
  char accept[32];
  char resp[160];
  int n;

  end = memmem (req, len, "\r\n\r\n", 4);
  if (NULL == end)
    return (len < MAX_REQUEST) ? 0 : -1;
  *end = '\0';
  key = strcasestr (req, "\r\nSec-WebSocket-Key:");
  if (NULL == key)
    return -1;
  key += strlen ("\r\nSec-WebSocket-Key:");
  while (' ' == *key)
    key++;
  eol = strstr (key, "\r\n");
  if (NULL != eol)
    *eol = '\0';
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_create_accept_header (key, accept))
    return -1;
  n = snprintf (resp, sizeof (resp),
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                accept);
  if (n != send (c->fd, resp, (size_t) n, MSG_NOSIGNAL))
    return -1;
  c->open = 1;
  if (0 == strncmp (req, "GET /chat", 9))
  {
    if (w->n_members == w->cap_members)
    {
      size_t cap = w->cap_members ? 2 * w->cap_members : 1024;
      struct fconn **m = realloc (w->members, cap * sizeof (*m));

      if (NULL == m)
        return -1;
      w->members = m;
      w->cap_members = cap;
    }
    c->chat = 1;
    c->member = w->n_members;
    w->members[w->n_members++] = c;
  }
  return (long) (end - req) + 4;
}

/**
 * Sends the @a n buffers of @a iov with one writev, keeping what does
 * not fit.  Returns -1 when the connection is broken.
 */
static int
send_iov (struct worker *w, struct fconn *c, int n)
{
  ssize_t sent = writev (c->fd, w->iov, n);
  size_t total = 0;
  int i;

  if ((sent < 0) && (EAGAIN != errno) && (EWOULDBLOCK != errno))
    return -1;
  for (i = 0; i < n; i++)
    total += w->iov[i].iov_len;
  if (sent < 0)
    sent = 0;
  if ((size_t) sent < total)
    return keep_pend (w, c, w->iov, n, (size_t) sent);
  return 0;
}

/**
 * One read (none unless @a do_read: only the frames kept from earlier)
 * and what it brings; -1 to drop the connection.
 */
static int
on_readable (struct worker *w, struct fconn *c, int do_read)
{
  unsigned char *p = w->buf;
  size_t have = c->rest_len;
  size_t off = 0;
  int n_iov = 0;
  int close_after = 0;
  ssize_t r;

  if (0 != have)
    memcpy (p, c->rest, have);
  if (do_read)
  {
    r = read (c->fd, p + have, READ_BUF - have);
    if (r < 0)
      return ((EAGAIN == errno) || (EWOULDBLOCK == errno) || (EINTR == errno))
               ? 0
               : -1;
    if (0 == r)
      return -1;
    have += (size_t) r;
  }
  if (! c->open)
  {
    long used = handshake (w, c, p, have);

    if (used < 0)
      return -1;
    off = (size_t) used;
    if (0 == used)
      return keep_rest (c, p, have);
  }
  while ((off < have) && (NULL == c->pend) && ! close_after)
  {
    const unsigned char *key;
    uint64_t plen;
    size_t h = client_header (p + off, have - off, &plen, &key);
    unsigned char b0 = p[off];
    unsigned char *payload;

    if (0 == h)
      break;
    if (plen > READ_BUF - h)
      return -1;
    if (have - off - h < plen)
      break;
    payload = p + off + h;
    off += h + (size_t) plen;
    if (NULL != key)
      unmask (payload, (size_t) plen, key);
    /* A close frame is echoed, then the connection ends. */
    close_after = (0x8 == (b0 & 0x0F));
    if (c->chat && ! close_after)
    {
      broadcast (w, b0, payload, (size_t) plen);
      continue;
    }
    w->iov[n_iov].iov_base = w->hdr[n_iov / 2];
    w->iov[n_iov].iov_len = server_header (w->hdr[n_iov / 2], b0, plen);
    w->iov[n_iov + 1].iov_base = payload;
    w->iov[n_iov + 1].iov_len = (size_t) plen;
    n_iov += 2;
    /* Only a read of more than 512 frames takes a second writev. */
    if (MAX_IOV == n_iov)
    {
      if (0 != send_iov (w, c, n_iov))
        return -1;
      n_iov = 0;
    }
  }
  if ((0 != n_iov) && (0 != send_iov (w, c, n_iov)))
    return -1;
  if (close_after && (NULL == c->pend))
    return -1;
  return keep_rest (c, p + off, have - off);
}

static void
on_accept (struct worker *w)
{
  for (;;)
  {
    struct epoll_event ev;
    struct fconn *c;
    int one = 1;
    int fd = accept4 (w->lfd, NULL, NULL, SOCK_NONBLOCK);

    if (fd < 0)
      return;
    (void) setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    c = calloc (1, sizeof (*c));
    if (NULL == c)
    {
      close (fd);
      continue;
    }
    c->fd = fd;
    memset (&ev, 0, sizeof (ev));
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (0 != epoll_ctl (w->ep, EPOLL_CTL_ADD, fd, &ev))
    {
      close (fd);
      free (c);
    }
  }
}

static void *
run (void *cls)
{
  struct worker *w = cls;
  struct epoll_event evs[256];

  for (;;)
  {
    int n = epoll_wait (w->ep, evs, 256, -1);
    int k;

    for (k = 0; k < n; k++)
    {
      void *tag = evs[k].data.ptr;
      struct fconn *c = tag;

      if (&listen_tag == tag)
        on_accept (w);
      else if (&mailbox_tag == tag)
        take_mailbox (w);
      else if (NULL != c->pend)
      {
        /* Frames that came with the read that filled the socket wait
           in rest: they go out once the socket has room again. */
        if ((0 != (evs[k].events & (EPOLLERR | EPOLLHUP)))
            || (0 != flush_pend (w, c))
            || ((NULL == c->pend) && (0 != c->rest_len)
                && (0 != on_readable (w, c, 0))))
          drop (w, c);
      }
      else if (0 != on_readable (w, c, 1))
        drop (w, c);
    }
  }
  return NULL;
}

static int
listen_on (unsigned port)
{
  struct sockaddr_in sa;
  int one = 1;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

  if (fd < 0)
    return -1;
  (void) setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
  (void) setsockopt (fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof (one));
  memset (&sa, 0, sizeof (sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons ((uint16_t) port);
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if ((0 != bind (fd, (struct sockaddr *) &sa, sizeof (sa)))
      || (0 != listen (fd, 1024)))
  {
    close (fd);
    return -1;
  }
  return fd;
}

static int
add_tag (int ep, int fd, void *tag)
{
  struct epoll_event ev;

  memset (&ev, 0, sizeof (ev));
  ev.events = EPOLLIN;
  ev.data.ptr = tag;
  return epoll_ctl (ep, EPOLL_CTL_ADD, fd, &ev);
}

int
main (int argc, char **argv)
{
  struct rlimit rl;
  struct sockaddr_in sa;
  socklen_t sl = sizeof (sa);
  unsigned long port = 0;
  long ncpu = sysconf (_SC_NPROCESSORS_ONLN);
  unsigned i;
  int opt;

  n_workers = (ncpu > 0) ? (unsigned) ncpu : 1;
  while (-1 != (opt = getopt (argc, argv, "t:")))
  {
    if ('t' != opt)
    {
      fprintf (stderr, "usage: floor [-t THREADS] [PORT]\n");
      return 2;
    }
    n_workers = (unsigned) strtoul (optarg, NULL, 10);
  }
  if (optind < argc)
    port = strtoul (argv[optind], NULL, 10);
  if ((0 == n_workers) || (n_workers > 256) || (port > 65535))
  {
    fprintf (stderr, "usage: floor [-t THREADS] [PORT]\n");
    return 2;
  }
  /* One descriptor per connection: all the system allows. */
  if (0 == getrlimit (RLIMIT_NOFILE, &rl))
  {
    rl.rlim_cur = rl.rlim_max;
    (void) setrlimit (RLIMIT_NOFILE, &rl);
  }
  (void) signal (SIGPIPE, SIG_IGN); /* writev has no MSG_NOSIGNAL */
  workers = calloc (n_workers, sizeof (*workers));
  if (NULL == workers)
    return 1;
  for (i = 0; i < n_workers; i++)
  {
    struct worker *w = &workers[i];

    w->lfd = listen_on ((unsigned) port);
    w->ep = epoll_create1 (0);
    w->efd = eventfd (0, EFD_NONBLOCK);
    if ((w->lfd < 0) || (w->ep < 0) || (w->efd < 0)
        || (0 != add_tag (w->ep, w->lfd, &listen_tag))
        || (0 != add_tag (w->ep, w->efd, &mailbox_tag)))
    {
      perror ("floor: listen");
      return 1;
    }
    pthread_mutex_init (&w->lock, NULL);
    if ((0 == port)
        && (0 != getsockname (w->lfd, (struct sockaddr *) &sa, &sl)))
      return 1;
    if (0 == port)
      port = ntohs (sa.sin_port);
  }
  printf ("Serving on http://127.0.0.1:%lu/\n", port);
  fflush (stdout);
  for (i = 1; i < n_workers; i++)
    if (0 != pthread_create (&workers[i].tid, NULL, run, &workers[i]))
      return 1;
  run (&workers[0]);
  return 0;
}
