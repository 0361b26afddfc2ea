/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file load.c
 * @brief Load generator for examples/echo (not a unit test).
 *
 * One process, one epoll loop, non-blocking sockets: opens many
 * connections to an echo server on 127.0.0.1, performs the opening
 * handshake itself (checking Sec-WebSocket-Accept against
 * MHD_websocket_create_accept_header), then on every connection sends a
 * random text or binary message of 64 B to 4 KiB, waits for its echo,
 * compares every byte, and repeats.  The library runs in CLIENT mode,
 * masking with a deterministic generator, so a run can be replayed.
 *
 * Prints messages per second and the round-trip latency percentiles;
 * exits non-zero when any message was lost or came back different.
 *
 * usage: load -p PORT [-c CONNECTIONS] [-n ROUND_TRIPS] [-s SEED]
 *             [-t TIMEOUT_SECONDS]
 */
#define _GNU_SOURCE 1

#include <microhttpd_ws.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MIN_PAYLOAD 64
#define MAX_PAYLOAD 4096
#define INBUF_SIZE 16384
#define HANDSHAKE_MAX 2048

enum conn_state
{
  C_CONNECTING,
  C_HANDSHAKE, /* request sent (or being sent), reading the response */
  C_RUNNING,   /* one message in flight */
  C_CLOSING,   /* our close frame sent, waiting for the echo */
  C_DONE,
  C_FAILED
};

struct conn
{
  int fd;
  enum conn_state state;
  uint64_t rng;      /* payloads */
  uint64_t mask_rng; /* masking keys, via the stream's generator */
  struct MHD_WebSocketStream *ws;
  char accept[32];
  /* Pending output. */
  char *out;
  size_t out_len;
  size_t out_off;
  int out_frees; /* out came from the library: MHD_websocket_free it */
  int want_out;  /* EPOLLOUT registered */
  /* Input not yet decoded. */
  char in[INBUF_SIZE];
  size_t in_len;
  /* The message in flight. */
  unsigned char expect[MAX_PAYLOAD];
  size_t expect_len;
  int expect_text;
  uint64_t sent_ns;
  unsigned done;
  char request[256];
};

static unsigned n_conns = 500;
static unsigned n_rounds = 1000;
static unsigned long long errors;
static unsigned long long mismatches;
static uint64_t *lat;
static size_t n_lat;

static uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/** xorshift64*: deterministic and fast; quality is beside the point. */
static uint64_t
next_rand (uint64_t *s)
{
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * UINT64_C (0x2545F4914F6CDD1D);
}

static size_t
mask_rng (void *cls, void *buf, size_t len)
{
  unsigned char *p = buf;
  size_t i;
  for (i = 0; i < len; i++)
    p[i] = (unsigned char) (next_rand (cls) >> 56);
  return len;
}

static void
fail (struct conn *c, const char *why)
{
  if (C_FAILED == c->state)
    return;
  fprintf (stderr, "load: connection %d: %s (after %u round trips)\n", c->fd,
           why, c->done);
  errors++;
  c->state = C_FAILED;
}

static void
base64 (const unsigned char *in, size_t len, char *out)
{
  static const char d[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i;
  for (i = 0; i + 2 < len; i += 3)
  {
    uint32_t v =
      ((uint32_t) in[i] << 16) | ((uint32_t) in[i + 1] << 8) | in[i + 2];
    *out++ = d[v >> 18];
    *out++ = d[(v >> 12) & 63];
    *out++ = d[(v >> 6) & 63];
    *out++ = d[v & 63];
  }
  if (len - i == 1)
  {
    uint32_t v = (uint32_t) in[i] << 16;
    *out++ = d[v >> 18];
    *out++ = d[(v >> 12) & 63];
    *out++ = '=';
    *out++ = '=';
  }
  else if (len - i == 2)
  {
    uint32_t v = ((uint32_t) in[i] << 16) | ((uint32_t) in[i + 1] << 8);
    *out++ = d[v >> 18];
    *out++ = d[(v >> 12) & 63];
    *out++ = d[(v >> 6) & 63];
    *out++ = '=';
  }
  *out = '\0';
}

/** Random valid UTF-8 of exactly @a len bytes: 1- to 4-byte characters. */
static void
fill_text (uint64_t *rng, unsigned char *p, size_t len)
{
  size_t i = 0;
  while (i < len)
  {
    uint64_t r = next_rand (rng);
    unsigned kind = (unsigned) (r % 8);
    uint32_t cp;
    if ((kind >= 3) || (len - i < 4))
    {
      p[i++] = (unsigned char) (0x20 + (r >> 8) % 0x5F);
      continue;
    }
    if (0 == kind)
      cp = 0x80 + (uint32_t) ((r >> 8) % 0x780);
    else if (1 == kind)
    {
      cp = 0x800 + (uint32_t) ((r >> 8) % 0xF800);
      if ((cp >= 0xD800) && (cp <= 0xDFFF))
        cp -= 0x800; /* no surrogates */
    }
    else
      cp = 0x10000 + (uint32_t) ((r >> 8) % 0x100000);
    if (cp < 0x800)
    {
      p[i++] = (unsigned char) (0xC0 | (cp >> 6));
      p[i++] = (unsigned char) (0x80 | (cp & 0x3F));
    }
    else if (cp < 0x10000)
    {
      p[i++] = (unsigned char) (0xE0 | (cp >> 12));
      p[i++] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
      p[i++] = (unsigned char) (0x80 | (cp & 0x3F));
    }
    else
    {
      p[i++] = (unsigned char) (0xF0 | (cp >> 18));
      p[i++] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
      p[i++] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
      p[i++] = (unsigned char) (0x80 | (cp & 0x3F));
    }
  }
}

static void
set_out (struct conn *c, char *buf, size_t len, int library_owned)
{
  c->out = buf;
  c->out_len = len;
  c->out_off = 0;
  c->out_frees = library_owned;
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

static void
watch (int ep, struct conn *c, int want_out)
{
  struct epoll_event ev;
  if (want_out == c->want_out)
    return;
  ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
  ev.data.ptr = c;
  if (0 != epoll_ctl (ep, EPOLL_CTL_MOD, c->fd, &ev))
    fail (c, "epoll_ctl");
  c->want_out = want_out;
}

/** Writes what is pending; returns -1 on a broken connection. */
static int
flush_out (int ep, struct conn *c)
{
  while (c->out_off < c->out_len)
  {
    ssize_t n =
      send (c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0)
    {
      if ((EAGAIN == errno) || (EWOULDBLOCK == errno))
      {
        watch (ep, c, 1);
        return 0;
      }
      if (EINTR == errno)
        continue;
      fail (c, strerror (errno));
      return -1;
    }
    c->out_off += (size_t) n;
  }
  drop_out (c);
  watch (ep, c, 0);
  return 0;
}

/** Encodes and starts sending the next random message. */
static void
send_message (int ep, struct conn *c)
{
  char *frame;
  size_t frame_len;
  enum MHD_WEBSOCKET_STATUS st;
  uint64_t r = next_rand (&c->rng);

  c->expect_len = MIN_PAYLOAD + (size_t) (r % (MAX_PAYLOAD - MIN_PAYLOAD + 1));
  c->expect_text = (int) ((r >> 32) & 1);
  if (c->expect_text)
  {
    fill_text (&c->rng, c->expect, c->expect_len);
    st = MHD_websocket_encode_text (
      c->ws, (const char *) c->expect, c->expect_len,
      MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame, &frame_len, NULL);
  }
  else
  {
    size_t i;
    for (i = 0; i < c->expect_len; i++)
      c->expect[i] = (unsigned char) (next_rand (&c->rng) >> 56);
    st = MHD_websocket_encode_binary (
      c->ws, (const char *) c->expect, c->expect_len,
      MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame, &frame_len);
  }
  if (MHD_WEBSOCKET_STATUS_OK != st)
  {
    fail (c, "encode failed");
    return;
  }
  set_out (c, frame, frame_len, 1);
  c->sent_ns = now_ns ();
  flush_out (ep, c);
}

static void
send_close (int ep, struct conn *c)
{
  char *frame;
  size_t frame_len;
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_encode_close (c->ws, MHD_WEBSOCKET_CLOSEREASON_REGULAR,
                                     NULL, 0, &frame, &frame_len))
  {
    fail (c, "encode_close failed");
    return;
  }
  c->state = C_CLOSING;
  set_out (c, frame, frame_len, 1);
  flush_out (ep, c);
}

/** Parses the 101 response once it is complete in c->in. */
static void
read_handshake (int ep, struct conn *c)
{
  char *end;
  char *p;
  size_t hlen;

  c->in[c->in_len] = '\0';
  end = strstr (c->in, "\r\n\r\n");
  if (NULL == end)
  {
    if (c->in_len >= HANDSHAKE_MAX)
      fail (c, "handshake response too long");
    return;
  }
  hlen = (size_t) (end - c->in) + 4;
  *end = '\0';
  if (0 != strncmp (c->in, "HTTP/1.1 101", 12))
  {
    fail (c, "no 101 response");
    return;
  }
  p = strcasestr (c->in, "\r\nSec-WebSocket-Accept:");
  if (NULL == p)
  {
    fail (c, "no Sec-WebSocket-Accept");
    return;
  }
  p += strlen ("\r\nSec-WebSocket-Accept:");
  while (' ' == *p || '\t' == *p)
    p++;
  if ((0 != strncmp (p, c->accept, 28)) || (('\r' != p[28]) && ('\0' != p[28])))
  {
    fail (c, "wrong Sec-WebSocket-Accept");
    return;
  }
  /* Frames may follow the response in the same read. */
  memmove (c->in, c->in + hlen, c->in_len - hlen);
  c->in_len -= hlen;
  c->state = C_RUNNING;
  send_message (ep, c);
}

static void
check_echo (int ep, struct conn *c, int status, const char *payload, size_t len)
{
  int want = c->expect_text ? MHD_WEBSOCKET_STATUS_TEXT_FRAME
                            : MHD_WEBSOCKET_STATUS_BINARY_FRAME;
  if ((C_RUNNING != c->state) || (0 != c->out_len))
  {
    /* An echo before our message was fully sent cannot be ours. */
    mismatches++;
    fail (c, "unexpected message");
    return;
  }
  if ((status != want) || (len != c->expect_len)
      || (0 != memcmp (payload, c->expect, len)))
  {
    mismatches++;
    fail (c, "echo differs from the message sent");
    return;
  }
  lat[n_lat++] = now_ns () - c->sent_ns;
  c->done++;
  if (c->done == n_rounds)
    send_close (ep, c);
  else
    send_message (ep, c);
}

/** Decodes every complete frame in c->in. */
static void
decode_input (int ep, struct conn *c)
{
  size_t off = 0;
  while ((off < c->in_len) && (C_RUNNING == c->state || C_CLOSING == c->state))
  {
    char *payload;
    size_t payload_len;
    size_t used;
    int st = MHD_websocket_decode (c->ws, c->in + off, c->in_len - off, &used,
                                   &payload, &payload_len);
    off += used;
    if (st < 0)
    {
      fail (c, "decode error");
      break;
    }
    switch (st)
    {
    case MHD_WEBSOCKET_STATUS_OK:
      break;
    case MHD_WEBSOCKET_STATUS_TEXT_FRAME:
    case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
      check_echo (ep, c, st, payload, payload_len);
      break;
    case MHD_WEBSOCKET_STATUS_CLOSE_FRAME:
      if (C_CLOSING == c->state)
        c->state = C_DONE;
      else
        fail (c, "server closed early");
      break;
    case MHD_WEBSOCKET_STATUS_PING_FRAME:
    case MHD_WEBSOCKET_STATUS_PONG_FRAME:
      break; /* the echo server does not ping; nothing to check */
    default:
      fail (c, "unexpected frame status");
      break;
    }
    MHD_websocket_free (c->ws, payload);
    if (0 == used)
      break;
  }
  memmove (c->in, c->in + off, c->in_len - off);
  c->in_len -= off;
}

static void
on_readable (int ep, struct conn *c)
{
  for (;;)
  {
    ssize_t n;
    size_t room = INBUF_SIZE - 1 - c->in_len; /* 1 for the NUL */
    if (0 == room)
    {
      fail (c, "input buffer full");
      return;
    }
    n = recv (c->fd, c->in + c->in_len, room, 0);
    if (n < 0)
    {
      if ((EAGAIN == errno) || (EWOULDBLOCK == errno))
        return;
      if (EINTR == errno)
        continue;
      fail (c, strerror (errno));
      return;
    }
    if (0 == n)
    {
      if (C_DONE != c->state)
        fail (c, "server closed the connection");
      return;
    }
    c->in_len += (size_t) n;
    if (C_HANDSHAKE == c->state)
      read_handshake (ep, c);
    if ((C_RUNNING == c->state) || (C_CLOSING == c->state))
      decode_input (ep, c);
    if ((C_DONE == c->state) || (C_FAILED == c->state))
      return;
  }
}

static void
on_connected (int ep, struct conn *c)
{
  int err = 0;
  socklen_t len = sizeof (err);
  unsigned char key[16];
  char key64[32];
  int n;

  if ((0 != getsockopt (c->fd, SOL_SOCKET, SO_ERROR, &err, &len)) || (0 != err))
  {
    fail (c, "connect failed");
    return;
  }
  mask_rng (&c->rng, key, sizeof (key));
  base64 (key, sizeof (key), key64);
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_create_accept_header (key64, c->accept))
  {
    fail (c, "create_accept_header failed");
    return;
  }
  n = snprintf (c->request, sizeof (c->request),
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n",
                key64);
  c->state = C_HANDSHAKE;
  set_out (c, c->request, (size_t) n, 0);
  flush_out (ep, c);
}

static int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a;
  uint64_t y = *(const uint64_t *) b;
  return (x > y) - (x < y);
}

static void
usage (void)
{
  fprintf (stderr, "usage: load -p PORT [-c CONNECTIONS] [-n ROUND_TRIPS] "
                   "[-s SEED] [-t TIMEOUT_SECONDS]\n");
  exit (2);
}

int
main (int argc, char **argv)
{
  struct rlimit rl;
  struct sockaddr_in sa;
  struct conn *conns;
  struct epoll_event evs[256];
  unsigned long port = 0;
  unsigned long long seed = 1;
  unsigned timeout_s = 300;
  unsigned active;
  unsigned i;
  int ep;
  int opt;
  uint64_t start;
  uint64_t stop;
  uint64_t deadline;
  unsigned long long expected;
  unsigned long long lost;
  double secs;

  while (-1 != (opt = getopt (argc, argv, "p:c:n:s:t:")))
  {
    switch (opt)
    {
    case 'p':
      port = strtoul (optarg, NULL, 10);
      break;
    case 'c':
      n_conns = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'n':
      n_rounds = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 's':
      seed = strtoull (optarg, NULL, 10);
      break;
    case 't':
      timeout_s = (unsigned) strtoul (optarg, NULL, 10);
      break;
    default:
      usage ();
    }
  }
  if ((0 == port) || (port > 65535) || (0 == n_conns) || (0 == n_rounds))
    usage ();

  /* Each connection needs a descriptor; take all the system allows. */
  if (0 == getrlimit (RLIMIT_NOFILE, &rl))
  {
    rl.rlim_cur = rl.rlim_max;
    (void) setrlimit (RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t) n_conns + 16)
    {
      fprintf (stderr,
               "load: descriptor limit %llu is too low for %u "
               "connections\n",
               (unsigned long long) rl.rlim_cur, n_conns);
      return 2;
    }
  }

  conns = calloc (n_conns, sizeof (*conns));
  lat = malloc ((size_t) n_conns * n_rounds * sizeof (*lat));
  ep = epoll_create1 (0);
  if ((NULL == conns) || (NULL == lat) || (ep < 0))
  {
    fprintf (stderr, "load: out of memory\n");
    return 2;
  }
  memset (&sa, 0, sizeof (sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons ((uint16_t) port);
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);

  start = now_ns ();
  deadline = start + (uint64_t) timeout_s * 1000000000u;
  for (i = 0; i < n_conns; i++)
  {
    struct conn *c = &conns[i];
    struct epoll_event ev;
    int one = 1;

    c->rng = (seed + 1) * UINT64_C (0x9E3779B97F4A7C15) + i * 2 + 1;
    c->mask_rng = c->rng ^ UINT64_C (0xD1B54A32D192ED03);
    if (MHD_WEBSOCKET_STATUS_OK
        != MHD_websocket_stream_init2 (&c->ws, MHD_WEBSOCKET_FLAG_CLIENT, 0,
                                       malloc, realloc, free, &c->mask_rng,
                                       mask_rng))
    {
      fprintf (stderr, "load: stream_init2 failed\n");
      return 2;
    }
    c->fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
    {
      perror ("load: socket");
      return 2;
    }
    /* Round trips, not throughput: do not let Nagle hold small frames. */
    (void) setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    c->state = C_CONNECTING;
    c->want_out = 1;
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    if ((0 != connect (c->fd, (struct sockaddr *) &sa, sizeof (sa)))
        && (EINPROGRESS != errno))
    {
      fail (c, "connect");
      continue;
    }
    if (0 != epoll_ctl (ep, EPOLL_CTL_ADD, c->fd, &ev))
      fail (c, "epoll_ctl");
  }

  active = n_conns;
  while (active > 0)
  {
    int n;
    int k;
    uint64_t t = now_ns ();
    if (t >= deadline)
    {
      fprintf (stderr, "load: timed out after %u s\n", timeout_s);
      break;
    }
    n = epoll_wait (ep, evs, 256, 1000);
    if ((n < 0) && (EINTR != errno))
    {
      perror ("load: epoll_wait");
      break;
    }
    for (k = 0; k < n; k++)
    {
      struct conn *c = evs[k].data.ptr;
      enum conn_state before = c->state;
      if ((C_DONE == before) || (C_FAILED == before))
        continue;
      if (C_CONNECTING == c->state)
      {
        if (0 != (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
          on_connected (ep, c);
      }
      else
      {
        if ((0 != (evs[k].events & EPOLLOUT)) && (0 != c->out_len))
          flush_out (ep, c);
        if ((C_DONE != c->state) && (C_FAILED != c->state)
            && (0 != (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP))))
          on_readable (ep, c);
      }
      if ((C_DONE == c->state) || (C_FAILED == c->state))
      {
        close (c->fd);
        c->fd = -1;
        active--;
      }
    }
  }
  stop = now_ns ();

  expected = (unsigned long long) n_conns * n_rounds;
  lost = expected - n_lat;
  secs = (double) (stop - start) / 1e9;
  qsort (lat, n_lat, sizeof (*lat), cmp_u64);
  printf ("connections:      %u (%llu failed)\n", n_conns, errors);
  printf ("round trips:      %zu of %llu (%u per connection, 64 B - 4 KiB, "
          "text and binary)\n",
          n_lat, expected, n_rounds);
  printf ("elapsed:          %.2f s (handshakes and closes included)\n", secs);
  printf ("messages/s:       %.0f round trips/s (%.0f frames/s both ways)\n",
          (double) n_lat / secs, 2.0 * (double) n_lat / secs);
  if (n_lat > 0)
  {
    printf ("latency p50:      %.1f us\n", (double) lat[n_lat / 2] / 1e3);
    printf ("latency p90:      %.1f us\n",
            (double) lat[(size_t) ((double) n_lat * 0.90)] / 1e3);
    printf ("latency p99:      %.1f us\n",
            (double) lat[(size_t) ((double) n_lat * 0.99)] / 1e3);
    printf ("latency max:      %.1f us\n", (double) lat[n_lat - 1] / 1e3);
  }
  printf ("losses:           %llu\n", lost);
  printf ("mismatches:       %llu\n", mismatches);

  for (i = 0; i < n_conns; i++)
  {
    if (conns[i].fd >= 0)
      close (conns[i].fd);
    drop_out (&conns[i]);
    MHD_websocket_stream_free (conns[i].ws);
  }
  free (conns);
  free (lat);
  close (ep);
  return ((0 == lost) && (0 == mismatches) && (0 == errors)) ? EXIT_SUCCESS
                                                             : EXIT_FAILURE;
}
