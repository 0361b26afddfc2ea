/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file churn.c
 * @brief Churn soak client: connections that connect, echo a few messages
 *        and close, continuously; then checks that the server's memory
 *        and descriptors are back to where they started.
 *
 * One epoll loop, non-blocking sockets, the library in CLIENT mode (as
 * tests/bench/load.c).  First a warm-up (a few hundred connections that
 * come and go, so that what the server sets up once is not counted as
 * growth), then the server's VmRSS and open descriptors are read from
 * /proc/PID.  Then -c CONNECTIONS are opened and held until all are up
 * (so the server holds that many at once at least once), and from then
 * on, for -d SECONDS, every connection echoes -n messages (16 B to 1 KiB,
 * text and binary, every byte checked) and ends, and a new one takes
 * its place.  Most end with the closing handshake; one in ten ends
 * abruptly instead, taking turns: right after the handshake, with a
 * message in flight, or right after sending its close frame.  Handshakes
 * in flight are capped (-h) since the listen backlog is finite.  The
 * connections come from several loopback source addresses (-a) because
 * an abrupt close leaves the port in TIME_WAIT.
 *
 * After the last connection has ended, the server's VmRSS and
 * descriptors are polled for up to -w seconds until the descriptors are
 * exactly as many as at the start and VmRSS at most the larger of +10%
 * and +2 MiB above it (-k KIB changes the 2 MiB): the examples hand freed
 * heap back once a second after connections ended (malloc_trim), so
 * anything above that was kept.  Exits non-zero on a lost or changed
 * echo, a connection that failed, or a server that did not come back.
 *
 * usage: churn -P SERVER_PID -p PORT [-c CONNECTIONS] [-d SECONDS]
 *              [-n MESSAGES] [-h HANDSHAKES] [-a SOURCE_ADDRESSES]
 *              [-w SETTLE_SECONDS] [-k RSS_SLACK_KIB] [-u PATH]
 */
#define _GNU_SOURCE 1

#include "loadgen.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIN_PAYLOAD 16
#define MAX_PAYLOAD 1024
#define INBUF_SIZE 4096
#define HANDSHAKE_MAX 2048

enum state
{
  S_FREE,       /* no connection: waits for its turn to connect */
  S_CONNECTING, /* connect() in progress */
  S_HANDSHAKE,  /* request sent, reading the 101 */
  S_HELD,       /* ramp: up, waiting for the others */
  S_RUNNING,    /* a message in flight */
  S_CLOSING,    /* our close frame sent: waiting for the server's and EOF */
  S_DRAINING    /* the server's close came: waiting for its EOF */
};

/* How a connection ends. */
enum ending
{
  END_CLEAN,
  END_AFTER_HANDSHAKE, /* close() right after the 101 */
  END_MID_MESSAGE,     /* close() with a message in flight */
  END_AFTER_CLOSE      /* close() right after sending our close frame */
};

struct conn
{
  int fd;
  enum state state;
  enum ending ending;
  unsigned source;
  uint64_t mask_rng;
  struct MHD_WebSocketStream *ws;
  char accept[32];
  char *out;
  size_t out_len;
  size_t out_off;
  int out_frees;
  int want_out;
  char in[INBUF_SIZE];
  size_t in_len;
  unsigned char expect[MAX_PAYLOAD];
  size_t expect_len;
  int expect_text;
  unsigned done;
  char request[256];
};

static uint64_t rng = UINT64_C (0x243F6A8885A308D3);
static const char *url_path = "/";
static unsigned n_msgs = 3;
static unsigned n_sources = 32;
static struct sockaddr_in server;
/* Connections started, ended (by kind), failed; messages echoed. */
static unsigned long long started;
static unsigned long long ended_clean;
static unsigned long long ended_abrupt;
static unsigned long long failures;
static unsigned long long echoed;
static unsigned handshaking;
static unsigned open_now;
static unsigned open_peak;

static void
fail (struct conn *c, const char *why)
{
  failures++;
  if (failures <= 10)
    fprintf (stderr, "churn: connection %d (state %d): %s\n", c->fd,
             (int) c->state, why);
  if (10 == failures)
    fprintf (stderr, "churn: (further failures are only counted)\n");
}

static void
drop_out (struct conn *c)
{
  if (c->out_frees)
    MHD_websocket_free (c->ws, c->out);
  c->out = NULL;
  c->out_len = 0;
  c->out_off = 0;
  c->out_frees = 0;
}

/** Ends the connection on our side (a clean end or a failure alike). */
static void
finish (int ep, struct conn *c)
{
  if ((S_CONNECTING == c->state) || (S_HANDSHAKE == c->state))
    handshaking--;
  else if (S_FREE != c->state)
    open_now--;
  (void) epoll_ctl (ep, EPOLL_CTL_DEL, c->fd, NULL);
  close (c->fd);
  c->fd = -1;
  drop_out (c);
  /* The stream stays until the slot's next connection: a payload that
     the caller still holds is freed through it. */
  c->in_len = 0;
  c->state = S_FREE;
}

static void
broken (int ep, struct conn *c, const char *why)
{
  fail (c, why);
  finish (ep, c);
}

/** Writes what is pending; returns -1 (connection finished) on failure. */
static int
flush_out (int ep, struct conn *c)
{
  if (0 != lg_send (c->fd, c->out, c->out_len, &c->out_off))
  {
    broken (ep, c, strerror (errno));
    return -1;
  }
  if (c->out_off == c->out_len)
    drop_out (c);
  if (0 != lg_watch (ep, c->fd, c, &c->want_out, NULL != c->out))
  {
    broken (ep, c, "epoll_ctl");
    return -1;
  }
  return 0;
}

static int
queue_frame (int ep, struct conn *c, int st, char *frame, size_t len)
{
  if (MHD_WEBSOCKET_STATUS_OK != st)
  {
    broken (ep, c, "encode failed");
    return -1;
  }
  if (NULL != c->out)
  {
    /* One frame at a time: the previous one is always out by now, as
       the server answers only after it has it all. */
    MHD_websocket_free (c->ws, frame);
    broken (ep, c, "output still pending");
    return -1;
  }
  c->out = frame;
  c->out_len = len;
  c->out_off = 0;
  c->out_frees = 1;
  return flush_out (ep, c);
}

static int
send_message (int ep, struct conn *c)
{
  uint64_t r = lg_next_rand (&rng);
  char *frame;
  size_t len;
  size_t i;
  int st;

  c->expect_len = MIN_PAYLOAD + (size_t) (r % (MAX_PAYLOAD - MIN_PAYLOAD + 1));
  c->expect_text = (int) ((r >> 32) & 1);
  for (i = 0; i < c->expect_len; i++)
    c->expect[i] = c->expect_text
                     ? (unsigned char) (0x20 + lg_next_rand (&rng) % 0x5F)
                     : (unsigned char) (lg_next_rand (&rng) >> 56);
  if (c->expect_text)
    st = MHD_websocket_encode_text (
      c->ws, (const char *) c->expect, c->expect_len,
      MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame, &len, NULL);
  else
    st = MHD_websocket_encode_binary (
      c->ws, (const char *) c->expect, c->expect_len,
      MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame, &len);
  c->state = S_RUNNING;
  return queue_frame (ep, c, st, frame, len);
}

static int
send_close (int ep, struct conn *c)
{
  char *frame;
  size_t len;
  int st = MHD_websocket_encode_close (c->ws, MHD_WEBSOCKET_CLOSEREASON_REGULAR,
                                       NULL, 0, &frame, &len);

  c->state = S_CLOSING;
  return queue_frame (ep, c, st, frame, len);
}

/** The next step of a connection that is up: a message, or its end. */
static void
next_step (int ep, struct conn *c)
{
  if ((END_AFTER_HANDSHAKE == c->ending) && (0 == c->done))
  {
    ended_abrupt++;
    finish (ep, c);
    return;
  }
  if ((END_MID_MESSAGE == c->ending) && (c->done + 1 == n_msgs))
  {
    if (0 == send_message (ep, c))
    {
      ended_abrupt++;
      finish (ep, c);
    }
    return;
  }
  if (c->done < n_msgs)
  {
    (void) send_message (ep, c);
    return;
  }
  if (0 != send_close (ep, c))
    return;
  if (END_AFTER_CLOSE == c->ending)
  {
    ended_abrupt++;
    finish (ep, c);
  }
}

static void
on_message (int ep, struct conn *c, int st, const char *payload, size_t len)
{
  int want = c->expect_text ? MHD_WEBSOCKET_STATUS_TEXT_FRAME
                            : MHD_WEBSOCKET_STATUS_BINARY_FRAME;

  if ((S_RUNNING != c->state) || (NULL != c->out) || (st != want)
      || (len != c->expect_len) || (0 != memcmp (payload, c->expect, len)))
  {
    broken (ep, c, "echo differs from the message sent");
    return;
  }
  echoed++;
  c->done++;
  next_step (ep, c);
}

/** Decodes what is in c->in; the connection may be finished after. */
static void
decode_input (int ep, struct conn *c)
{
  size_t off = 0;

  while ((off < c->in_len)
         && ((S_RUNNING == c->state) || (S_CLOSING == c->state)
             || (S_HELD == c->state)))
  {
    char *payload = NULL;
    size_t payload_len = 0;
    size_t used = 0;
    int st = MHD_websocket_decode (c->ws, c->in + off, c->in_len - off, &used,
                                   &payload, &payload_len);

    off += used;
    if (st < 0)
    {
      MHD_websocket_free (c->ws, payload);
      broken (ep, c, "decode error");
      return;
    }
    if ((MHD_WEBSOCKET_STATUS_TEXT_FRAME == st)
        || (MHD_WEBSOCKET_STATUS_BINARY_FRAME == st))
      on_message (ep, c, st, payload, payload_len);
    else if (MHD_WEBSOCKET_STATUS_CLOSE_FRAME == st)
    {
      if (S_CLOSING == c->state)
        c->state = S_DRAINING;
      else
        broken (ep, c, "server closed early");
    }
    else if (MHD_WEBSOCKET_STATUS_PING_FRAME == st)
    {
      char *frame;
      size_t len;

      if ((NULL == c->out)
          && (MHD_WEBSOCKET_STATUS_OK
              == MHD_websocket_encode_pong (c->ws, payload, payload_len, &frame,
                                            &len)))
      {
        c->out = frame;
        c->out_len = len;
        c->out_off = 0;
        c->out_frees = 1;
        (void) flush_out (ep, c);
      }
    }
    else if ((MHD_WEBSOCKET_STATUS_OK != st)
             && (MHD_WEBSOCKET_STATUS_PONG_FRAME != st))
      broken (ep, c, "unexpected frame");
    MHD_websocket_free (c->ws, payload);
    if ((0 == used) || (S_FREE == c->state))
      break;
  }
  if (S_FREE == c->state)
    return;
  memmove (c->in, c->in + off, c->in_len - off);
  c->in_len -= off;
}

static void
on_up (int ep, struct conn *c, int ramp)
{
  handshaking--;
  open_now++;
  if (open_now > open_peak)
    open_peak = open_now;
  c->state = S_HELD;
  if (! ramp)
    next_step (ep, c);
}

static void
on_readable (int ep, struct conn *c, int ramp)
{
  for (;;)
  {
    int r = lg_recv (c->fd, c->in, &c->in_len, INBUF_SIZE);

    if (0 == r)
      return;
    if (LG_RECV_CLOSED == r)
    {
      if (S_DRAINING == c->state)
      {
        ended_clean++;
        finish (ep, c);
      }
      else
        broken (ep, c, "server closed the connection");
      return;
    }
    if (r < 0)
    {
      broken (ep, c,
              (LG_RECV_FULL == r) ? "input buffer full" : strerror (errno));
      return;
    }
    if (S_HANDSHAKE == c->state)
    {
      const char *why = NULL;
      long hlen =
        lg_handshake (c->in, c->in_len, HANDSHAKE_MAX, c->accept, &why);

      if (hlen < 0)
      {
        broken (ep, c, why);
        return;
      }
      if (0 == hlen)
        continue;
      memmove (c->in, c->in + hlen, c->in_len - (size_t) hlen);
      c->in_len -= (size_t) hlen;
      on_up (ep, c, ramp);
      if (S_FREE == c->state)
        return;
    }
    if (S_DRAINING == c->state)
      c->in_len = 0; /* whatever follows the close is dropped */
    else
      decode_input (ep, c);
    if (S_FREE == c->state)
      return;
  }
}

static void
on_connected (int ep, struct conn *c)
{
  size_t n;
  const char *why = lg_connected (c->fd, &rng, url_path, c->accept, c->request,
                                  sizeof (c->request), &n);

  if (NULL != why)
  {
    broken (ep, c, why);
    return;
  }
  c->state = S_HANDSHAKE;
  c->out = c->request;
  c->out_len = n;
  c->out_off = 0;
  c->out_frees = 0;
  (void) flush_out (ep, c);
}

/** Starts a new connection in slot @a c; -1 on a local failure. */
static int
start_conn (int ep, struct conn *c)
{
  struct epoll_event ev;
  struct sockaddr_in local;
  int one = 1;
  unsigned long long k = started++;

  /* One in ten ends abruptly, the three ways in turn. */
  c->ending = (9 == k % 10) ? (enum ending) (1 + (k / 10) % 3) : END_CLEAN;
  c->done = 0;
  c->in_len = 0;
  c->mask_rng = lg_next_rand (&rng);
  if (NULL != c->ws)
    MHD_websocket_stream_free (c->ws);
  c->ws = NULL;
  if (0 != lg_stream_init (&c->ws, &c->mask_rng))
    return -1;
  c->fd = lg_socket ("churn");
  if (c->fd < 0)
    return -1;
  memset (&local, 0, sizeof (local));
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl (INADDR_LOOPBACK + 1 + c->source);
#ifdef IP_BIND_ADDRESS_NO_PORT
  (void) setsockopt (c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                     sizeof (one));
#endif
  if (0 != bind (c->fd, (struct sockaddr *) &local, sizeof (local)))
  {
    perror ("churn: bind");
    return -1;
  }
  c->state = S_CONNECTING;
  c->want_out = 1;
  handshaking++;
  c->source = (c->source + 1) % n_sources;
  memset (&ev, 0, sizeof (ev));
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.ptr = c;
  if (((0
        != connect (c->fd, (const struct sockaddr *) &server, sizeof (server)))
       && (EINPROGRESS != errno))
      || (0 != epoll_ctl (ep, EPOLL_CTL_ADD, c->fd, &ev)))
    broken (ep, c, "connect");
  return 0;
}

static void
pump (int ep, int ms, int ramp)
{
  struct epoll_event evs[256];
  int n = epoll_wait (ep, evs, 256, ms);
  int k;

  for (k = 0; k < n; k++)
  {
    struct conn *c = evs[k].data.ptr;

    if (S_FREE == c->state)
      continue; /* finished earlier in this batch */
    if (S_CONNECTING == c->state)
    {
      if (0 != (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        on_connected (ep, c);
      continue;
    }
    if ((0 != (evs[k].events & EPOLLOUT)) && (NULL != c->out)
        && (0 != flush_out (ep, c)))
      continue;
    if (0 != (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
      on_readable (ep, c, ramp);
  }
}

/**
 * Fills free slots with new connections, at most @a cap handshakes in
 * flight; -1 on a local failure.
 */
static int
refill (int ep, struct conn *conns, unsigned n, unsigned *next, unsigned cap)
{
  unsigned scanned;

  for (scanned = 0; (scanned < n) && (handshaking < cap); scanned++)
  {
    struct conn *c = &conns[*next];

    *next = (*next + 1) % n;
    if ((S_FREE == c->state) && (0 != start_conn (ep, c)))
      return -1;
  }
  return 0;
}


static long
proc_fds (long pid)
{
  char path[64];
  struct dirent *e;
  long n = 0;
  DIR *d;

  snprintf (path, sizeof (path), "/proc/%ld/fd", pid);
  d = opendir (path);
  if (NULL == d)
    return -1;
  while (NULL != (e = readdir (d)))
    if ('.' != e->d_name[0])
      n++;
  closedir (d);
  return n;
}

static void
usage (void)
{
  fprintf (stderr,
           "usage: churn -P SERVER_PID -p PORT [-c CONNECTIONS] [-d SECONDS] "
           "[-n MESSAGES] [-h HANDSHAKES] [-a SOURCE_ADDRESSES] "
           "[-w SETTLE_SECONDS] [-k RSS_SLACK_KIB] [-u PATH]\n");
  exit (2);
}

/** Runs connections until @a end_ns, then lets the last ones finish. */
static int
churn (int ep, struct conn *conns, unsigned n, unsigned cap, uint64_t end_ns,
       long pid, long long *rss_peak, long *fds_peak)
{
  unsigned next = 0;
  uint64_t sampled = 0;
  uint64_t drain_end;

  while (lg_now_ns () < end_ns)
  {
    uint64_t now;

    if (0 != refill (ep, conns, n, &next, cap))
      return -1;
    pump (ep, 10, 0);
    now = lg_now_ns ();
    if (now - sampled >= 1000000000u)
    {
      long long rss = lg_proc_rss_kib (pid);
      long fds = proc_fds (pid);

      sampled = now;
      if ((rss < 0) || (fds < 0))
      {
        fprintf (stderr, "churn: the server (PID %ld) is gone\n", pid);
        return -1;
      }
      if (rss > *rss_peak)
        *rss_peak = rss;
      if (fds > *fds_peak)
        *fds_peak = fds;
    }
  }
  /* No new ones; the ones in progress get 10 s to end on their own. */
  drain_end = lg_now_ns () + 10000000000u;
  while ((open_now + handshaking > 0) && (lg_now_ns () < drain_end))
    pump (ep, 100, 0);
  return 0;
}

int
main (int argc, char **argv)
{
  unsigned long long fd_limit;
  struct conn *conns;
  long pid = 0;
  unsigned long port = 0;
  unsigned n = 15000;
  unsigned seconds = 300;
  unsigned cap = 512;
  unsigned settle = 30;
  long long slack_kib = 2048;
  long long rss0, rss1 = 0, rss_peak = 0, limit_kib;
  long fds0, fds1 = 0, fds_peak = 0;
  unsigned next = 0;
  unsigned i;
  uint64_t t0, t1, deadline;
  double secs;
  int ep;
  int opt;
  int back = 0;

  while (-1 != (opt = getopt (argc, argv, "P:p:c:d:n:h:a:w:k:u:")))
  {
    switch (opt)
    {
    case 'P':
      pid = strtol (optarg, NULL, 10);
      break;
    case 'p':
      port = strtoul (optarg, NULL, 10);
      break;
    case 'c':
      n = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'd':
      seconds = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'n':
      n_msgs = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'h':
      cap = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'a':
      n_sources = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'w':
      settle = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'k':
      slack_kib = strtoll (optarg, NULL, 10);
      break;
    case 'u':
      if (('/' != optarg[0]) || (strlen (optarg) > 100)
          || (NULL != strpbrk (optarg, " \r\n")))
        usage ();
      url_path = optarg;
      break;
    default:
      usage ();
    }
  }
  if ((pid <= 0) || (0 == port) || (port > 65535) || (0 == n) || (0 == cap)
      || (0 == n_sources) || (n_sources > 250) || (0 == n_msgs))
    usage ();
  if (0 != lg_raise_fd_limit (n, &fd_limit))
  {
    fprintf (stderr,
             "churn: descriptor limit %llu is too low for %u "
             "connections\n",
             fd_limit, n);
    return 2;
  }
  conns = calloc (n, sizeof (*conns));
  ep = epoll_create1 (0);
  if ((NULL == conns) || (ep < 0))
  {
    fprintf (stderr, "churn: out of memory\n");
    return 2;
  }
  for (i = 0; i < n; i++)
  {
    conns[i].fd = -1;
    conns[i].source = i % n_sources;
  }
  lg_loopback (&server, port);

  /* Warm-up: what the server sets up once is not growth. */
  {
    unsigned w = (n < 200) ? n : 200;

    if (0
        != churn (ep, conns, w, cap, lg_now_ns () + 1000000000u, pid, &rss_peak,
                  &fds_peak))
      return 1;
    for (i = 0; i < w; i++)
      if (S_FREE != conns[i].state)
      {
        fail (&conns[i], "warm-up connection still open");
        finish (ep, &conns[i]);
      }
    sleep (2); /* the examples trim the heap once a second */
  }
  rss0 = lg_proc_rss_kib (pid);
  fds0 = proc_fds (pid);
  rss_peak = rss0;
  fds_peak = fds0;
  if ((rss0 < 0) || (fds0 < 0))
  {
    fprintf (stderr, "churn: cannot read /proc/%ld\n", pid);
    return 2;
  }
  limit_kib = rss0 + ((rss0 / 10 > slack_kib) ? rss0 / 10 : slack_kib);
  printf ("server PID %ld after the warm-up: VmRSS %lld KiB, %ld open "
          "descriptors\n",
          pid, rss0, fds0);
  started = ended_clean = ended_abrupt = echoed = 0;

  /* Ramp: all of them up at once. */
  t0 = lg_now_ns ();
  deadline = t0 + 120000000000u;
  while ((open_now < n) && (lg_now_ns () < deadline))
  {
    if (0 != refill (ep, conns, n, &next, cap))
      return 1;
    pump (ep, 10, 1);
  }
  rss_peak = lg_proc_rss_kib (pid);
  fds_peak = proc_fds (pid);
  printf ("ramp:     %u of %u connections up at once in %.1f s; server "
          "VmRSS %lld KiB, %ld descriptors\n",
          open_now, n, (double) (lg_now_ns () - t0) / 1e9, rss_peak, fds_peak);
  if (open_now < n)
  {
    fprintf (stderr, "churn: only %u of %u connections came up\n", open_now, n);
    failures++;
  }
  for (i = 0; i < n; i++)
    if (S_HELD == conns[i].state)
      next_step (ep, &conns[i]);

  /* Churn. */
  if (0
      != churn (ep, conns, n, cap, t0 + (uint64_t) seconds * 1000000000u, pid,
                &rss_peak, &fds_peak))
    return 1;
  t1 = lg_now_ns ();
  secs = (double) (t1 - t0) / 1e9;
  for (i = 0; i < n; i++)
    if (S_FREE != conns[i].state)
    {
      fail (&conns[i], "still open after the run");
      finish (ep, &conns[i]);
    }
  for (i = 0; i < n; i++)
    if (NULL != conns[i].ws)
      MHD_websocket_stream_free (conns[i].ws);
  printf ("churn:    %.0f s: %llu connections (%.0f/s), %llu ended with the "
          "closing handshake, %llu abruptly; %llu messages echoed; peak %u "
          "open at once; %llu failed\n",
          secs, started, (double) started / secs, ended_clean, ended_abrupt,
          echoed, open_peak, failures);
  printf ("peak:     server VmRSS %lld KiB, %ld descriptors\n", rss_peak,
          fds_peak);

  /* Settle: back to the start, within the tolerance. */
  t0 = lg_now_ns ();
  for (i = 0; i <= settle * 10; i++)
  {
    rss1 = lg_proc_rss_kib (pid);
    fds1 = proc_fds (pid);
    if ((rss1 < 0) || (fds1 < 0))
      break;
    if ((fds1 == fds0) && (rss1 <= limit_kib))
    {
      back = 1;
      break;
    }
    usleep (100000);
  }
  printf ("after:    server VmRSS %lld KiB (start %lld, +%lld KiB, limit "
          "%lld), %ld descriptors (start %ld), %s after %.1f s\n",
          rss1, rss0, rss1 - rss0, limit_kib, fds1, fds0,
          back ? "back" : "NOT back", (double) (lg_now_ns () - t0) / 1e9);
  free (conns);
  close (ep);
  if (! back)
    fprintf (stderr, "churn: the server did not come back to its start\n");
  return (back && (0 == failures) && (started > 0)) ? EXIT_SUCCESS
                                                    : EXIT_FAILURE;
}
