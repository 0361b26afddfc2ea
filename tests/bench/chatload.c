/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file chatload.c
 * @brief Load generator for examples/chatserver, one process or a
 *        cluster (not a unit test).
 *
 * One epoll loop, non-blocking sockets: opens CLIENTS chat connections
 * (spread round-robin over the ports given, e.g. one HAProxy port or
 * each chatserver's), does the opening handshake itself, waits for every
 * welcome and for the join announcements to settle, then
 *
 *  1. latency: MESSAGES messages, one every 1/RATE s, each from another
 *     client; every client must receive each one exactly once, and the
 *     time from send to receipt is recorded (one clock: one process);
 *  2. throughput: BURST messages sent at once by BURST clients; the
 *     deliveries per second are the receipts over the time from the
 *     first send to the last receipt.
 *
 * Messages acknowledged with {"type":"error"} (chatserver --redis) count
 * as failed.  Prints the welcome's server names with their client
 * counts, the percentiles, how late the timed messages left (late_ms)
 * and the rate, and a last line
 * "RESULT key=value ..." for scripts; exits non-zero when a message was
 * missing, duplicated or refused, or a connection failed.
 *
 * usage: chatload -p PORT [-p PORT...] [-c CLIENTS] [-m MESSAGES]
 *                 [-r RATE] [-b BURST] [-t TIMEOUT_SECONDS]
 */
#define _GNU_SOURCE 1

#include "loadgen.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define INBUF_SIZE 65536
#define OUTBUF_SIZE 4096
#define HANDSHAKE_MAX 2048
#define MAX_PORTS 16
#define MAX_SERVERS 64
/* Join announcements have settled when nothing arrived for this long. */
#define QUIET_NS (500 * 1000000ull)
/* What has not arrived after this long without a message sent or
   received stays missing. */
#define GIVE_UP_NS (3000 * 1000000ull)

enum conn_state
{
  C_CONNECTING,
  C_HANDSHAKE,
  C_OPEN,
  C_FAILED
};

struct conn
{
  int fd;
  unsigned idx;
  enum conn_state state;
  uint64_t rng;
  struct MHD_WebSocketStream *ws;
  char accept[32];
  int welcomed;
  int want_out;
  char out[OUTBUF_SIZE];
  size_t out_len;
  char in[INBUF_SIZE];
  size_t in_len;
};

static struct conn *conns;
static unsigned n_conns = 3000;
static unsigned n_msgs = 100;
static unsigned rate = 50;
static unsigned n_burst = 50;
static int ep;

static unsigned failures;
static unsigned welcomed;
/* When the last text message arrived (pings do not count: the server
   sends them to clients silent for a while). */
static uint64_t last_input_ns;
/* When the last chat message went out. */
static uint64_t last_send_ns;

/* Per message (latency messages first, then the burst): when it was
   sent, how many receipts, and which clients got it (a bitmap, so that
   duplicates show). */
static unsigned n_total;
static uint64_t *sent_ns;
static unsigned *receipts;
static unsigned char *seen;
static unsigned long long duplicates;
static unsigned long long refused;
static unsigned long long foreign; /* msg frames that are not ours */
static uint64_t *lat;
static size_t n_lat;
static uint64_t burst_first_ns;
static uint64_t burst_last_ns;
static unsigned long long burst_receipts;

static char server_name[MAX_SERVERS][96];
static unsigned server_clients[MAX_SERVERS];
static unsigned n_servers;


static void
fail (struct conn *c, const char *why)
{
  if (C_FAILED == c->state)
    return;
  fprintf (stderr, "chatload: client %u: %s\n", c->idx, why);
  failures++;
  c->state = C_FAILED;
  (void) epoll_ctl (ep, EPOLL_CTL_DEL, c->fd, NULL);
}


static void
watch (struct conn *c, int want_out)
{
  if (0 != lg_watch (ep, c->fd, c, &c->want_out, want_out))
    fail (c, "epoll_ctl");
}


static void
flush_out (struct conn *c)
{
  size_t off = 0;

  if (0 != lg_send (c->fd, c->out, c->out_len, &off))
  {
    fail (c, strerror (errno));
    return;
  }
  memmove (c->out, c->out + off, c->out_len - off);
  c->out_len -= off;
  watch (c, c->out_len > 0);
}


static void
queue_out (struct conn *c, const char *data, size_t len)
{
  if (c->out_len + len > OUTBUF_SIZE)
  {
    fail (c, "output buffer full");
    return;
  }
  memcpy (c->out + c->out_len, data, len);
  c->out_len += len;
  flush_out (c);
}


/* Sends message @a k ("<k> <nanoseconds>") from client @a c. */
static void
send_msg (struct conn *c, unsigned k)
{
  char text[64];
  char *frame;
  size_t frame_len;
  int n;

  sent_ns[k] = lg_now_ns ();
  last_send_ns = sent_ns[k];
  n = snprintf (text, sizeof (text), "%u %llu", k,
                (unsigned long long) sent_ns[k]);
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_encode_text (c->ws, text, (size_t) n,
                                    MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame,
                                    &frame_len, NULL))
  {
    fail (c, "encode failed");
    return;
  }
  queue_out (c, frame, frame_len);
  MHD_websocket_free (c->ws, frame);
}


/* Copies the JSON string value of @a key in @a json (no escapes
   expected) into @a out. */
static int
json_string (const char *json, size_t len, const char *key, char *out,
             size_t out_size)
{
  const char *p = memmem (json, len, key, strlen (key));
  const char *end;

  if (NULL == p)
    return -1;
  p += strlen (key);
  end = memchr (p, '"', len - (size_t) (p - json));
  if ((NULL == end) || ((size_t) (end - p) >= out_size))
    return -1;
  memcpy (out, p, (size_t) (end - p));
  out[end - p] = '\0';
  return 0;
}


static void
on_welcome (struct conn *c, const char *json, size_t len)
{
  char name[96];
  unsigned i;

  if (c->welcomed)
    return;
  c->welcomed = 1;
  welcomed++;
  if (0 != json_string (json, len, "\"server\":\"", name, sizeof (name)))
    strcpy (name, "(single process)");
  for (i = 0; i < n_servers; i++)
    if (0 == strcmp (server_name[i], name))
      break;
  if ((i == n_servers) && (n_servers < MAX_SERVERS))
    strcpy (server_name[n_servers++], name);
  if (i < MAX_SERVERS)
    server_clients[i]++;
}


static void
on_text (struct conn *c, const char *json, size_t len)
{
  const char *p;
  unsigned long k;
  uint64_t now;

  if ((len > 17) && (0 == memcmp (json, "{\"type\":\"welcome\"", 17)))
  {
    on_welcome (c, json, len);
    return;
  }
  if ((len > 15) && (0 == memcmp (json, "{\"type\":\"error\"", 15)))
  {
    refused++;
    fprintf (stderr, "chatload: refused: %.*s\n", (int) len, json);
    return;
  }
  if ((len < 13) || (0 != memcmp (json, "{\"type\":\"msg\"", 13)))
    return;
  p = memmem (json, len, "\"text\":\"", 8);
  if (NULL == p)
    return;
  k = strtoul (p + 8, NULL, 10);
  if (k >= n_total)
  {
    foreign++;
    return;
  }
  now = lg_now_ns ();
  if (seen[(size_t) k * n_conns + c->idx])
  {
    duplicates++;
    return;
  }
  seen[(size_t) k * n_conns + c->idx] = 1;
  receipts[k]++;
  if (k < n_msgs)
    lat[n_lat++] = now - sent_ns[k];
  else
  {
    burst_receipts++;
    burst_last_ns = now;
  }
}


static void
read_handshake (struct conn *c)
{
  const char *why = NULL;
  long hlen = lg_handshake (c->in, c->in_len, HANDSHAKE_MAX, c->accept, &why);

  if (hlen <= 0)
  {
    if (hlen < 0)
      fail (c, why);
    return;
  }
  memmove (c->in, c->in + hlen, c->in_len - (size_t) hlen);
  c->in_len -= (size_t) hlen;
  c->state = C_OPEN;
}


static void
decode_input (struct conn *c)
{
  size_t off = 0;

  while ((off < c->in_len) && (C_OPEN == c->state))
  {
    char *payload = NULL;
    size_t payload_len = 0;
    size_t used = 0;
    char *frame;
    size_t frame_len;
    int st = MHD_websocket_decode (c->ws, c->in + off, c->in_len - off, &used,
                                   &payload, &payload_len);

    off += used;
    if (st < 0)
    {
      fail (c, "decode error");
      break;
    }
    if (MHD_WEBSOCKET_STATUS_TEXT_FRAME == st)
    {
      last_input_ns = lg_now_ns ();
      on_text (c, payload, payload_len);
    }
    else if (MHD_WEBSOCKET_STATUS_PING_FRAME == st)
    {
      if (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_encode_pong (c->ws, payload, payload_len, &frame,
                                        &frame_len))
      {
        queue_out (c, frame, frame_len);
        MHD_websocket_free (c->ws, frame);
      }
    }
    else if (MHD_WEBSOCKET_STATUS_CLOSE_FRAME == st)
      fail (c, "the server closed the connection");
    if (NULL != payload)
      MHD_websocket_free (c->ws, payload);
    if ((MHD_WEBSOCKET_STATUS_OK == st) || (0 == used))
      break;
  }
  memmove (c->in, c->in + off, c->in_len - off);
  c->in_len -= off;
}


static void
on_readable (struct conn *c)
{
  for (;;)
  {
    int r = lg_recv (c->fd, c->in, &c->in_len, INBUF_SIZE);

    if (0 == r)
      return;
    if (r < 0)
    {
      fail (c, (LG_RECV_FULL == r)    ? "input buffer full"
               : (LG_RECV_ERROR == r) ? strerror (errno)
                                      : "the server closed the connection");
      return;
    }
    if (C_HANDSHAKE == c->state)
      read_handshake (c);
    if (C_OPEN == c->state)
      decode_input (c);
    if (C_FAILED == c->state)
      return;
  }
}


static void
on_connected (struct conn *c)
{
  char target[32];
  char request[512];
  size_t n;
  const char *why;

  snprintf (target, sizeof (target), "/?name=load%u", c->idx);
  why = lg_connected (c->fd, &c->rng, target, c->accept, request,
                      sizeof (request), &n);
  if (NULL != why)
  {
    fail (c, why);
    return;
  }
  c->state = C_HANDSHAKE;
  queue_out (c, request, n);
}


/* One round of events, at most @a ms milliseconds of waiting. */
static void
run_events (int ms)
{
  struct epoll_event evs[256];
  int n = epoll_wait (ep, evs, 256, ms);
  int i;

  for (i = 0; i < n; i++)
  {
    struct conn *c = evs[i].data.ptr;

    if (C_FAILED == c->state)
      continue;
    if (C_CONNECTING == c->state)
    {
      if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        on_connected (c);
      continue;
    }
    if (evs[i].events & EPOLLOUT)
      flush_out (c);
    if ((C_FAILED != c->state)
        && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
      on_readable (c);
  }
}


/* Nothing was sent or received for GIVE_UP_NS. */
static int
gone_quiet (void)
{
  uint64_t last = (last_input_ns > last_send_ns) ? last_input_ns : last_send_ns;

  return lg_now_ns () - last > GIVE_UP_NS;
}


static double
pct_ms (double p)
{
  size_t i;

  if (0 == n_lat)
    return 0;
  i = (size_t) (p * (double) (n_lat - 1) + 0.5);
  return (double) lat[i] / 1e6;
}


static void
usage (void)
{
  fprintf (stderr, "usage: chatload -p PORT [-p PORT...] [-c CLIENTS] "
                   "[-m MESSAGES] [-r RATE] [-b BURST] [-t TIMEOUT_SECONDS]\n");
  exit (2);
}


/* The next open client from @a *next on, round-robin. */
static struct conn *
next_sender (unsigned *next)
{
  unsigned tries;

  for (tries = 0; tries < n_conns; tries++)
  {
    struct conn *c = &conns[(*next)++ % n_conns];

    if (C_OPEN == c->state)
      return c;
  }
  return NULL;
}


int
main (int argc, char **argv)
{
  unsigned long ports[MAX_PORTS];
  unsigned n_ports = 0;
  unsigned timeout_s = 120;
  unsigned long long fd_limit;
  unsigned i;
  unsigned k;
  int opt;
  uint64_t start;
  uint64_t deadline;
  uint64_t t0;
  uint64_t max_late = 0;
  unsigned next = 0;
  unsigned long long expected;
  unsigned long long got = 0;
  unsigned long long missing;
  double lat_secs;
  double burst_secs;
  double burst_rate;
  double late_ms;

  while (-1 != (opt = getopt (argc, argv, "p:c:m:r:b:t:")))
  {
    switch (opt)
    {
    case 'p':
      if (n_ports == MAX_PORTS)
        usage ();
      ports[n_ports++] = strtoul (optarg, NULL, 10);
      break;
    case 'c':
      n_conns = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'm':
      n_msgs = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'r':
      rate = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'b':
      n_burst = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 't':
      timeout_s = (unsigned) strtoul (optarg, NULL, 10);
      break;
    default:
      usage ();
    }
  }
  if ((0 == n_ports) || (0 == n_conns) || (0 == rate) || (n_burst > n_conns))
    usage ();
  for (i = 0; i < n_ports; i++)
    if ((0 == ports[i]) || (ports[i] > 65535))
      usage ();
  /* A descriptor per client. */
  if (0 != lg_raise_fd_limit (n_conns, &fd_limit))
  {
    fprintf (stderr, "chatload: descriptor limit %llu is too low\n", fd_limit);
    return 2;
  }
  n_total = n_msgs + n_burst;
  conns = calloc (n_conns, sizeof (*conns));
  sent_ns = calloc (n_total + 1, sizeof (*sent_ns));
  receipts = calloc (n_total + 1, sizeof (*receipts));
  seen = calloc ((size_t) n_total * n_conns + 1, 1);
  lat = calloc ((size_t) n_msgs * n_conns + 1, sizeof (*lat));
  ep = epoll_create1 (0);
  if ((NULL == conns) || (NULL == sent_ns) || (NULL == receipts)
      || (NULL == seen) || (NULL == lat) || (ep < 0))
  {
    fprintf (stderr, "chatload: out of memory\n");
    return 1;
  }

  start = lg_now_ns ();
  deadline = start + (uint64_t) timeout_s * 1000000000u;
  /* Connect in batches, so that the listen backlogs do not overflow. */
  for (i = 0; i < n_conns; i++)
  {
    struct conn *c = &conns[i];
    struct sockaddr_in sa;
    struct epoll_event ev;

    c->idx = i;
    c->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t) i * 0x100000001b3ull);
    if (0 != lg_stream_init (&c->ws, &c->rng))
    {
      fprintf (stderr, "chatload: stream_init2 failed\n");
      return 1;
    }
    c->fd = lg_socket ("chatload");
    if (c->fd < 0)
      return 1;
    lg_loopback (&sa, ports[i % n_ports]);
    c->state = C_CONNECTING;
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    c->want_out = 1;
    if (0 != epoll_ctl (ep, EPOLL_CTL_ADD, c->fd, &ev))
    {
      fprintf (stderr, "chatload: epoll_ctl: %s\n", strerror (errno));
      return 1;
    }
    if ((0 != connect (c->fd, (struct sockaddr *) &sa, sizeof (sa)))
        && (EINPROGRESS != errno))
      fail (c, "connect");
    if (99 == i % 100)
      while ((welcomed + failures < i + 1) && (lg_now_ns () < deadline))
        run_events (100);
  }
  while ((welcomed + failures < n_conns) && (lg_now_ns () < deadline))
    run_events (100);
  printf ("%u clients connected and welcomed in %.2f s (%u failed)\n", welcomed,
          (double) (lg_now_ns () - start) / 1e9, failures);
  for (i = 0; i < n_servers; i++)
    printf ("  %u clients on %s\n", server_clients[i], server_name[i]);
  /* Everyone's join reaches everyone: wait for the storm to pass. */
  t0 = lg_now_ns ();
  last_input_ns = t0;
  while ((lg_now_ns () - last_input_ns < QUIET_NS) && (lg_now_ns () < deadline))
    run_events (50);
  printf ("join announcements settled after %.2f s\n",
          (double) (lg_now_ns () - t0) / 1e9);

  /* 1. Latency: one message every 1/rate s. */
  t0 = lg_now_ns ();
  for (k = 0; (k < n_msgs) && (lg_now_ns () < deadline); k++)
  {
    uint64_t due = t0 + (uint64_t) k * 1000000000u / rate;
    uint64_t now;
    struct conn *c;

    /* One reading of the clock per round: read twice, the time left
       could wrap below zero into an endless epoll_wait() timeout. */
    while ((now = lg_now_ns ()) < due)
      run_events ((int) ((due - now + 999999u) / 1000000u));
    if (now - due > max_late)
      max_late = now - due;
    c = next_sender (&next);
    if (NULL == c)
      break;
    send_msg (c, k);
  }
  expected = (unsigned long long) n_msgs * (n_conns - failures);
  while ((n_lat < expected) && (lg_now_ns () < deadline))
  {
    run_events (100);
    if ((n_lat < expected) && gone_quiet ())
      break;
  }
  lat_secs = (double) (lg_now_ns () - t0) / 1e9;

  /* 2. Throughput: n_burst messages at once. */
  burst_first_ns = lg_now_ns ();
  burst_last_ns = burst_first_ns;
  for (k = n_msgs; k < n_total; k++)
  {
    struct conn *c = next_sender (&next);

    if (NULL == c)
      break;
    send_msg (c, k);
  }
  expected = (unsigned long long) n_burst * (n_conns - failures);
  while ((burst_receipts < expected) && (lg_now_ns () < deadline))
  {
    run_events (100);
    if ((burst_receipts < expected) && gone_quiet ())
      break;
  }
  burst_secs = (double) (burst_last_ns - burst_first_ns) / 1e9;
  burst_rate = (burst_secs > 0) ? (double) burst_receipts / burst_secs : 0;

  for (k = 0; k < n_total; k++)
    got += receipts[k];
  expected = (unsigned long long) n_total * (n_conns - failures);
  missing = (got < expected) ? expected - got : 0;
  qsort (lat, n_lat, sizeof (*lat), lg_cmp_u64);
  late_ms = (double) max_late / 1e6;
  printf ("latency: %u messages at %u/s (sent up to %.1f ms late) to %u "
          "clients in %.2f s: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, "
          "max %.2f ms\n",
          n_msgs, rate, late_ms, n_conns - failures, lat_secs, pct_ms (0.50),
          pct_ms (0.90), pct_ms (0.99), pct_ms (1.0));
  printf ("burst: %u messages at once, %llu deliveries in %.3f s: "
          "%.0f deliveries/s\n",
          n_burst, burst_receipts, burst_secs, burst_rate);
  printf ("deliveries: %llu of %llu expected, %llu missing, %llu duplicated, "
          "%llu refused, %u failed connections\n",
          got, expected, missing, duplicates, refused, failures);
  printf ("RESULT clients=%u servers=%u messages=%u deliveries=%llu "
          "missing=%llu duplicates=%llu refused=%llu failed=%u "
          "p50_ms=%.2f p99_ms=%.2f burst_per_s=%.0f late_ms=%.1f\n",
          n_conns, n_servers, n_total, got, missing, duplicates, refused,
          failures, pct_ms (0.50), pct_ms (0.99), burst_rate, late_ms);
  for (i = 0; i < n_conns; i++)
  {
    if (conns[i].fd >= 0)
      close (conns[i].fd);
    MHD_websocket_stream_free (conns[i].ws);
  }
  return ((0 == missing) && (0 == duplicates) && (0 == refused)
          && (0 == failures) && (0 == foreign))
           ? 0
           : 1;
}
