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
 * Scale mode (-P SERVER_PID, for make bench-scale): opens all the
 * connections first, from several loopback source addresses (-a, to get
 * past the ephemeral port range of one address), holds them idle and
 * reads the server's RSS growth per connection from /proc; then runs the
 * echo rounds (-m echo) or broadcast rounds (-m chat: one member sends,
 * every member must receive it before the next round) and reports the
 * server's CPU time per message from /proc/PID/stat, the rates, the
 * latencies and the generator's own CPU, last as one "ROW" line.
 *
 * -T speaks TLS (wss://, OpenSSL's libssl; the certificate is not
 * checked): the TLS handshake comes between connect() and the opening
 * handshake, and every byte goes through SSL_read() and SSL_write().
 *
 * usage: load -p PORT [-c CONNECTIONS] [-n ROUND_TRIPS] [-s SEED]
 *             [-t TIMEOUT_SECONDS] [-T]
 *        load -P SERVER_PID -p PORT -c CONNECTIONS [-m echo|chat]
 *             [-n ROUND_TRIPS] [-b BROADCAST_ROUNDS] [-a SOURCE_ADDRESSES]
 *             [-r ROW_NAME] [-u PATH] [-T]
 */
#define _GNU_SOURCE 1

#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MIN_PAYLOAD 64
#define MAX_PAYLOAD 4096
#define INBUF_SIZE 16384
#define HANDSHAKE_MAX 2048

enum conn_state
{
  C_CONNECTING,
  C_TLS,       /* -T: the TLS handshake */
  C_HANDSHAKE, /* request sent (or being sent), reading the response */
  C_RUNNING,   /* one message in flight */
  C_CLOSING,   /* our close frame sent, waiting for the echo */
  C_IDLE,      /* scale mode: connected, waiting for the next phase */
  C_DONE,
  C_FAILED
};

struct conn
{
  int fd;
  SSL *ssl; /* -T */
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
  /* Scale mode: the last broadcast round this member received. */
  unsigned bcast_seen;
  char request[256];
};

static unsigned n_conns = 500;
static unsigned n_rounds = 1000;
static unsigned long long errors;
static unsigned long long mismatches;
static uint64_t *lat;
static size_t n_lat;

/* -T: TLS for every connection. */
static SSL_CTX *tls_ctx;

/* The request path (-u). */
static const char *url_path = "/";

/* Scale mode. */
static int scale_mode;
static int chat_mode;
/* Connections that finished their echo rounds (they return to C_IDLE). */
static unsigned echo_finished;
/* The broadcast round in flight (from 1) and how many members got it. */
static unsigned bcast_round;
static unsigned bcast_reached;

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

/** Random valid UTF-8 of exactly @a len bytes: 1- to 4-byte characters. */
static void
fill_text (uint64_t *rng, unsigned char *p, size_t len)
{
  size_t i = 0;
  while (i < len)
  {
    uint64_t r = lg_next_rand (rng);
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
  if (0 != lg_watch (ep, c->fd, c, &c->want_out, want_out))
    fail (c, "epoll_ctl");
}

/** lg_send() through TLS when -T: 0, or -1 on a broken connection. */
static int
conn_send (struct conn *c)
{
  if (NULL == c->ssl)
    return lg_send (c->fd, c->out, c->out_len, &c->out_off);
  while (c->out_off < c->out_len)
  {
    int n =
      SSL_write (c->ssl, c->out + c->out_off, (int) (c->out_len - c->out_off));

    if (n <= 0)
    {
      int e = SSL_get_error (c->ssl, n);

      if ((SSL_ERROR_WANT_WRITE == e) || (SSL_ERROR_WANT_READ == e))
        return 0;
      errno = EPROTO;
      return -1;
    }
    c->out_off += (size_t) n;
  }
  return 0;
}


/** lg_recv() through TLS when -T. */
static int
conn_recv (struct conn *c)
{
  size_t room = INBUF_SIZE - 1 - c->in_len;
  int n;

  if (NULL == c->ssl)
    return lg_recv (c->fd, c->in, &c->in_len, INBUF_SIZE);
  if (0 == room)
    return LG_RECV_FULL;
  n = SSL_read (c->ssl, c->in + c->in_len, (int) room);
  if (n > 0)
  {
    c->in_len += (size_t) n;
    return 1;
  }
  switch (SSL_get_error (c->ssl, n))
  {
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE:
    return 0;
  case SSL_ERROR_ZERO_RETURN:
    return LG_RECV_CLOSED;
  case SSL_ERROR_SYSCALL:
    /* An end without close_notify: libmicrohttpd closes that way. */
    if (0 == ERR_peek_error ())
      return LG_RECV_CLOSED;
    /* fall through */
  default:
    errno = EPROTO;
    return LG_RECV_ERROR;
  }
}


/** Writes what is pending; returns -1 on a broken connection. */
static int
flush_out (int ep, struct conn *c)
{
  if (0 != conn_send (c))
  {
    fail (c, strerror (errno));
    return -1;
  }
  if (c->out_off < c->out_len)
  {
    watch (ep, c, 1);
    return 0;
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
  uint64_t r = lg_next_rand (&c->rng);

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
      c->expect[i] = (unsigned char) (lg_next_rand (&c->rng) >> 56);
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
  c->sent_ns = lg_now_ns ();
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
  const char *why = NULL;
  long hlen = lg_handshake (c->in, c->in_len, HANDSHAKE_MAX, c->accept, &why);

  if (hlen <= 0)
  {
    if (hlen < 0)
      fail (c, why);
    return;
  }
  /* Frames may follow the response in the same read. */
  memmove (c->in, c->in + hlen, c->in_len - (size_t) hlen);
  c->in_len -= (size_t) hlen;
  if (scale_mode)
  {
    c->state = C_IDLE;
    return;
  }
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
  lat[n_lat++] = lg_now_ns () - c->sent_ns;
  c->done++;
  if ((c->done % n_rounds) != 0)
    send_message (ep, c);
  else if (scale_mode)
  {
    c->state = C_IDLE;
    echo_finished++;
  }
  else
    send_close (ep, c);
}

/**
 * Scale mode, chat: a member received a message.  Broadcasts carry
 * "bcast ROUND" in their text; the welcome is ignored.
 */
static void
on_chat_message (struct conn *c, const char *payload, size_t len)
{
  const char *tag = memmem (payload, len, "bcast ", 6);
  unsigned round;

  if (NULL == tag)
    return;
  round = (unsigned) strtoul (tag + 6, NULL, 10);
  if ((round == bcast_round) && (c->bcast_seen != round))
  {
    c->bcast_seen = round;
    bcast_reached++;
  }
}

/** Decodes every complete frame in c->in. */
static void
decode_input (int ep, struct conn *c)
{
  size_t off = 0;
  while (
    (off < c->in_len)
    && (C_RUNNING == c->state || C_CLOSING == c->state || C_IDLE == c->state))
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
      if (chat_mode)
        on_chat_message (c, payload, payload_len);
      else if (C_IDLE == c->state)
      {
        mismatches++;
        fail (c, "message while idle");
      }
      else
        check_echo (ep, c, st, payload, payload_len);
      break;
    case MHD_WEBSOCKET_STATUS_CLOSE_FRAME:
      if (C_CLOSING == c->state)
        c->state = C_DONE;
      else
        fail (c, "server closed early");
      break;
    case MHD_WEBSOCKET_STATUS_PING_FRAME:
      /* The chat server pings members silent for a while (idle ones in
         scale mode): answer, or it closes them. */
      if (0 == c->out_len)
      {
        char *frame;
        size_t frame_len;

        if (MHD_WEBSOCKET_STATUS_OK
            == MHD_websocket_encode_pong (c->ws, payload, payload_len, &frame,
                                          &frame_len))
        {
          set_out (c, frame, frame_len, 1);
          flush_out (ep, c);
        }
      }
      break;
    case MHD_WEBSOCKET_STATUS_PONG_FRAME:
      break;
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
    int r = conn_recv (c);

    if (0 == r)
      return;
    if (LG_RECV_FULL == r)
      fail (c, "input buffer full");
    else if (LG_RECV_ERROR == r)
      fail (c, strerror (errno));
    else if ((LG_RECV_CLOSED == r) && (C_DONE != c->state))
      fail (c, "server closed the connection");
    if (r < 0)
      return;
    if (C_HANDSHAKE == c->state)
      read_handshake (ep, c);
    if ((C_RUNNING == c->state) || (C_CLOSING == c->state)
        || (C_IDLE == c->state))
      decode_input (ep, c);
    if ((C_DONE == c->state) || (C_FAILED == c->state))
      return;
  }
}

static void send_request (int ep, struct conn *c);

/** -T: one step of the TLS handshake; the opening handshake follows. */
static void
tls_step (int ep, struct conn *c)
{
  int r = SSL_do_handshake (c->ssl);

  if (1 == r)
  {
    send_request (ep, c);
    return;
  }
  switch (SSL_get_error (c->ssl, r))
  {
  case SSL_ERROR_WANT_READ:
    watch (ep, c, 0);
    break;
  case SSL_ERROR_WANT_WRITE:
    watch (ep, c, 1);
    break;
  default:
    fail (c, "TLS handshake failed");
    break;
  }
}

static void
on_connected (int ep, struct conn *c)
{
  int err = 0;
  socklen_t len = sizeof (err);

  if (NULL == tls_ctx)
  {
    send_request (ep, c);
    return;
  }
  if ((0 != getsockopt (c->fd, SOL_SOCKET, SO_ERROR, &err, &len)) || (0 != err))
  {
    fail (c, "connect failed");
    return;
  }
  c->ssl = SSL_new (tls_ctx);
  if ((NULL == c->ssl) || (1 != SSL_set_fd (c->ssl, c->fd)))
  {
    fail (c, "SSL_new");
    return;
  }
  SSL_set_connect_state (c->ssl);
  c->state = C_TLS;
  tls_step (ep, c);
}

static void
send_request (int ep, struct conn *c)
{
  size_t n;
  const char *why = lg_connected (c->fd, &c->rng, url_path, c->accept,
                                  c->request, sizeof (c->request), &n);

  if (NULL != why)
  {
    fail (c, why);
    return;
  }
  c->state = C_HANDSHAKE;
  set_out (c, c->request, n, 0);
  flush_out (ep, c);
}

/* ---------------------------------------------------------------- scale mode */


/* The utime part of the last proc_cpu_s() reading, in seconds. */
static double proc_user_s;

/** utime + stime of a process, in seconds (utime alone in proc_user_s). */
static double
proc_cpu_s (long pid)
{
  char path[64];
  char buf[1024];
  char *p;
  size_t n;
  FILE *f;
  unsigned long long ut = 0;
  unsigned long long st = 0;
  int field;

  snprintf (path, sizeof (path), "/proc/%ld/stat", pid);
  f = fopen (path, "r");
  if (NULL == f)
    return -1;
  n = fread (buf, 1, sizeof (buf) - 1, f);
  fclose (f);
  buf[n] = '\0';
  /* Fields after the command name, which may hold spaces: the state is
     field 3, utime 14 and stime 15. */
  p = strrchr (buf, ')');
  if (NULL == p)
    return -1;
  p += 2;
  for (field = 3; field < 14 && NULL != p; field++)
  {
    p = strchr (p, ' ');
    if (NULL != p)
      p++;
  }
  if (NULL == p)
    return -1;
  if (2 != sscanf (p, "%llu %llu", &ut, &st))
    return -1;
  proc_user_s = (double) ut / (double) sysconf (_SC_CLK_TCK);
  return (double) (ut + st) / (double) sysconf (_SC_CLK_TCK);
}

static double
self_cpu_s (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
         + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

/**
 * Handles what epoll reports for up to @a ms milliseconds, once; a
 * connection that ends is closed and counted off @a live.  Returns what
 * epoll_wait() did.
 */
static int
pump (int ep, int ms, unsigned *live)
{
  struct epoll_event evs[256];
  int n = epoll_wait (ep, evs, 256, ms);
  int k;

  for (k = 0; k < n; k++)
  {
    struct conn *c = evs[k].data.ptr;

    if ((C_DONE == c->state) || (C_FAILED == c->state))
      continue;
    if (C_CONNECTING == c->state)
    {
      if (0 != (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        on_connected (ep, c);
    }
    else if (C_TLS == c->state)
      tls_step (ep, c);
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
      (void) epoll_ctl (ep, EPOLL_CTL_DEL, c->fd, NULL);
      SSL_free (c->ssl);
      c->ssl = NULL;
      close (c->fd);
      c->fd = -1;
      (*live)--;
    }
  }
  return n;
}

static int
start_conn (int ep, struct conn *c, const struct sockaddr_in *sa,
            unsigned source)
{
  struct epoll_event ev;
  struct sockaddr_in local;
  int one = 1;

  c->fd = lg_socket ("load");
  if (c->fd < 0)
    return -1;
  /* 127.0.0.2, .3, ...: each source address has its own ephemeral
     ports; the port is chosen at connect() time, per destination. */
  memset (&local, 0, sizeof (local));
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl (INADDR_LOOPBACK + 1 + source);
#ifdef IP_BIND_ADDRESS_NO_PORT
  (void) setsockopt (c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                     sizeof (one));
#endif
  if (0 != bind (c->fd, (struct sockaddr *) &local, sizeof (local)))
  {
    perror ("load: bind");
    return -1;
  }
  c->state = C_CONNECTING;
  c->want_out = 1;
  memset (&ev, 0, sizeof (ev));
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.ptr = c;
  if ((0 != connect (c->fd, (const struct sockaddr *) sa, sizeof (*sa)))
      && (EINPROGRESS != errno))
  {
    fail (c, "connect");
    return 0;
  }
  if (0 != epoll_ctl (ep, EPOLL_CTL_ADD, c->fd, &ev))
    fail (c, "epoll_ctl");
  return 0;
}

static unsigned
count_state (struct conn *conns, enum conn_state st)
{
  unsigned i;
  unsigned n = 0;

  for (i = 0; i < n_conns; i++)
    if (st == conns[i].state)
      n++;
  return n;
}

static int
scale_main (long pid, const struct sockaddr_in *sa, unsigned n_addrs,
            unsigned b_rounds, const char *row, unsigned timeout_s)
{
  struct conn *conns = calloc (n_conns, sizeof (*conns));
  int ep = epoll_create1 (0);
  unsigned live = n_conns;
  unsigned opened = 0;
  unsigned i;
  long long rss0;
  long long rss1;
  double per_conn;
  uint64_t t0;
  uint64_t t1;
  uint64_t deadline;
  double cpu0, cpu1, self0, self1, secs;
  double us_per_msg = 0, rate = 0, p50 = 0, p99 = 0, gen_cpu = 0;
  double deliveries = 0, reach_ms = 0, us_per_delivery = 0;
  /* The server's user CPU per message or delivery apart: its system CPU
     is mostly the kernel's loopback TCP path, much the same for every
     server that makes the same system calls. */
  double user0 = 0, user_us = 0;

  if ((NULL == conns) || (ep < 0))
  {
    fprintf (stderr, "load: out of memory\n");
    return 2;
  }
  if (0 == n_addrs)
    n_addrs = 1 + n_conns / 20000;
  rss0 = lg_proc_rss_kib (pid);
  if (rss0 < 0)
  {
    fprintf (stderr, "load: no process %ld\n", pid);
    return 2;
  }
  printf ("server PID %ld, RSS %lld KiB before; %u connections from %u "
          "source address%s\n",
          pid, rss0, n_conns, n_addrs, 1 == n_addrs ? "" : "es");

  /* Open them all, at most 256 handshakes at a time (the listen
     backlog). */
  deadline = lg_now_ns () + (uint64_t) timeout_s * 1000000000u;
  t0 = lg_now_ns ();
  for (;;)
  {
    unsigned pending = 0;
    unsigned idle;

    for (i = 0; i < opened; i++)
      if ((C_CONNECTING == conns[i].state) || (C_TLS == conns[i].state)
          || (C_HANDSHAKE == conns[i].state))
        pending++;
    while ((opened < n_conns) && (pending < 256))
    {
      struct conn *c = &conns[opened];

      c->rng = UINT64_C (0x9E3779B97F4A7C15) * (opened + 1);
      c->mask_rng = c->rng ^ UINT64_C (0xD1B54A32D192ED03);
      if (0 != lg_stream_init (&c->ws, &c->mask_rng))
        return 2;
      if (0 != start_conn (ep, c, sa, opened % n_addrs))
        return 2;
      opened++;
      pending++;
    }
    pump (ep, 10, &live);
    idle = count_state (conns, C_IDLE);
    if ((opened == n_conns) && (idle + (n_conns - live) >= n_conns))
      break;
    if (lg_now_ns () > deadline)
    {
      fprintf (stderr, "load: only %u of %u connected in time\n", idle,
               n_conns);
      break;
    }
  }
  t1 = lg_now_ns ();
  printf ("connected:        %u of %u in %.1f s\n", count_state (conns, C_IDLE),
          n_conns, (double) (t1 - t0) / 1e9);
  /* Idle for two seconds (welcomes and pings are answered). */
  t0 = lg_now_ns ();
  while (lg_now_ns () - t0 < 2000000000u)
    pump (ep, 100, &live);
  rss1 = lg_proc_rss_kib (pid);
  per_conn = (double) (rss1 - rss0) * 1024.0 / (double) n_conns;
  printf ("server RSS:       %lld KiB held, %.0f B per idle connection\n", rss1,
          per_conn);

  if (! chat_mode)
  {
    unsigned want = count_state (conns, C_IDLE);

    lat = malloc ((size_t) n_conns * n_rounds * sizeof (*lat));
    if (NULL == lat)
      return 2;
    cpu0 = proc_cpu_s (pid);
    user0 = proc_user_s;
    self0 = self_cpu_s ();
    t0 = lg_now_ns ();
    deadline = t0 + (uint64_t) timeout_s * 1000000000u;
    for (i = 0; i < n_conns; i++)
      if (C_IDLE == conns[i].state)
      {
        conns[i].state = C_RUNNING;
        send_message (ep, &conns[i]);
      }
    while ((echo_finished < want) && (lg_now_ns () < deadline)
           && (echo_finished + (n_conns - live) < n_conns))
      pump (ep, 100, &live);
    t1 = lg_now_ns ();
    cpu1 = proc_cpu_s (pid);
    self1 = self_cpu_s ();
    secs = (double) (t1 - t0) / 1e9;
    qsort (lat, n_lat, sizeof (*lat), lg_cmp_u64);
    rate = (double) n_lat / secs;
    if (n_lat > 0)
    {
      us_per_msg = (cpu1 - cpu0) * 1e6 / (double) n_lat;
      user_us = (proc_user_s - user0) * 1e6 / (double) n_lat;
      p50 = (double) lat[n_lat / 2] / 1e3;
      p99 = (double) lat[(size_t) ((double) n_lat * 0.99)] / 1e3;
    }
    gen_cpu = 100.0 * (self1 - self0) / secs;
    printf ("echo rounds:      %zu round trips of %u in %.2f s: %.0f/s, "
            "p50 %.0f us, p99 %.0f us\n",
            n_lat, want * n_rounds, secs, rate, p50, p99);
    printf ("server CPU:       %.2f s, %.1f us per echoed message; "
            "generator CPU %.0f%%\n",
            cpu1 - cpu0, us_per_msg, gen_cpu);
    if (n_lat != (size_t) want * n_rounds)
      errors++;
  }
  else
  {
    unsigned r;
    uint64_t *reach = calloc (b_rounds + 1, sizeof (*reach));
    unsigned long long delivered = 0;
    uint64_t total = 0;

    cpu0 = proc_cpu_s (pid);
    user0 = proc_user_s;
    self0 = self_cpu_s ();
    for (r = 1; r <= b_rounds; r++)
    {
      struct conn *sender = NULL;
      unsigned members = count_state (conns, C_IDLE);
      char text[64];
      char *frame;
      size_t frame_len;
      uint64_t start;
      int n;

      for (i = 0; i < n_conns; i++)
        if (C_IDLE == conns[(r + i) % n_conns].state)
        {
          sender = &conns[(r + i) % n_conns];
          break;
        }
      if ((NULL == sender) || (0 != sender->out_len))
        break;
      bcast_round = r;
      bcast_reached = 0;
      n = snprintf (text, sizeof (text), "bcast %u", r);
      if (MHD_WEBSOCKET_STATUS_OK
          != MHD_websocket_encode_text (sender->ws, text, (size_t) n,
                                        MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                        &frame, &frame_len, NULL))
        break;
      start = lg_now_ns ();
      set_out (sender, frame, frame_len, 1);
      flush_out (ep, sender);
      deadline = start + 30000000000u;
      while ((bcast_reached < members) && (lg_now_ns () < deadline))
        pump (ep, 100, &live);
      reach[r] = lg_now_ns () - start;
      total += reach[r];
      delivered += bcast_reached;
      if (bcast_reached < members)
      {
        fprintf (stderr, "load: round %u reached %u of %u members\n", r,
                 bcast_reached, members);
        errors++;
        break;
      }
    }
    cpu1 = proc_cpu_s (pid);
    self1 = self_cpu_s ();
    secs = (double) total / 1e9;
    if (r > 1)
    {
      qsort (reach + 1, r - 1, sizeof (*reach), lg_cmp_u64);
      reach_ms = (double) reach[1 + (r - 1) / 2] / 1e6;
    }
    if (secs > 0)
    {
      deliveries = (double) delivered / secs;
      gen_cpu = 100.0 * (self1 - self0) / secs;
    }
    if (delivered > 0)
    {
      us_per_delivery = (cpu1 - cpu0) * 1e6 / (double) delivered;
      user_us = (proc_user_s - user0) * 1e6 / (double) delivered;
    }
    printf ("broadcast rounds: %u to %u members: %llu deliveries in %.2f s, "
            "%.0f/s; median %.1f ms to reach all\n",
            r - 1, count_state (conns, C_IDLE), delivered, secs, deliveries,
            reach_ms);
    printf ("server CPU:       %.2f s, %.2f us per delivery; generator CPU "
            "%.0f%%\n",
            cpu1 - cpu0, us_per_delivery, gen_cpu);
    free (reach);
  }
  /* One machine-readable line for the table (tests/bench/scale.sh). */
  printf ("ROW %s %u %.0f %.1f %.0f %.0f %.0f %.0f %.0f %.1f %.2f %.2f\n",
          NULL != row ? row : "-", n_conns, per_conn, us_per_msg, rate, p50,
          p99, gen_cpu, deliveries, reach_ms, us_per_delivery, user_us);
  for (i = 0; i < n_conns; i++)
  {
    SSL_free (conns[i].ssl);
    if (conns[i].fd >= 0)
      close (conns[i].fd);
    drop_out (&conns[i]);
    if (NULL != conns[i].ws)
      MHD_websocket_stream_free (conns[i].ws);
  }
  free (conns);
  free (lat);
  close (ep);
  return (0 == errors) ? EXIT_SUCCESS : EXIT_FAILURE;
}

static void
usage (void)
{
  fprintf (stderr,
           "usage: load -p PORT [-c CONNECTIONS] [-n ROUND_TRIPS] "
           "[-s SEED] [-t TIMEOUT_SECONDS] [-T]\n"
           "       load -P SERVER_PID -p PORT -c CONNECTIONS [-m echo|chat] "
           "[-n ROUND_TRIPS] [-b BROADCAST_ROUNDS] [-a SOURCE_ADDRESSES] "
           "[-r ROW_NAME] [-u PATH] [-T]\n");
  exit (2);
}

int
main (int argc, char **argv)
{
  unsigned long long fd_limit;
  struct sockaddr_in sa;
  struct conn *conns;
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
  long server_pid = 0;
  unsigned n_addrs = 0;
  unsigned b_rounds = 20;
  const char *row = NULL;

  while (-1 != (opt = getopt (argc, argv, "p:c:n:s:t:P:m:a:b:r:u:T")))
  {
    switch (opt)
    {
    case 'T':
      tls_ctx = SSL_CTX_new (TLS_client_method ());
      if (NULL == tls_ctx)
      {
        fprintf (stderr, "load: SSL_CTX_new failed\n");
        return 2;
      }
      /* The benchmark's servers have self-signed certificates. */
      SSL_CTX_set_verify (tls_ctx, SSL_VERIFY_NONE, NULL);
      SSL_CTX_set_mode (tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                                   | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
      break;
    case 'P':
      server_pid = strtol (optarg, NULL, 10);
      scale_mode = 1;
      break;
    case 'm':
      if (0 == strcmp (optarg, "chat"))
        chat_mode = 1;
      else if (0 != strcmp (optarg, "echo"))
        usage ();
      break;
    case 'a':
      n_addrs = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'b':
      b_rounds = (unsigned) strtoul (optarg, NULL, 10);
      break;
    case 'r':
      row = optarg;
      break;
    case 'u':
      if (('/' != optarg[0]) || (strlen (optarg) > 100)
          || (NULL != strpbrk (optarg, " \r\n")))
        usage ();
      url_path = optarg;
      break;
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

  if (0 != lg_raise_fd_limit (n_conns, &fd_limit))
  {
    fprintf (stderr,
             "load: descriptor limit %llu is too low for %u "
             "connections\n",
             fd_limit, n_conns);
    return 2;
  }

  if (scale_mode || chat_mode)
  {
    lg_loopback (&sa, port);
    if ((! scale_mode) || (server_pid <= 0) || (n_addrs > 250))
      usage ();
    return scale_main (server_pid, &sa, n_addrs, b_rounds, row, timeout_s);
  }

  conns = calloc (n_conns, sizeof (*conns));
  lat = malloc ((size_t) n_conns * n_rounds * sizeof (*lat));
  ep = epoll_create1 (0);
  if ((NULL == conns) || (NULL == lat) || (ep < 0))
  {
    fprintf (stderr, "load: out of memory\n");
    return 2;
  }
  lg_loopback (&sa, port);

  start = lg_now_ns ();
  deadline = start + (uint64_t) timeout_s * 1000000000u;
  for (i = 0; i < n_conns; i++)
  {
    struct conn *c = &conns[i];
    struct epoll_event ev;

    c->rng = (seed + 1) * UINT64_C (0x9E3779B97F4A7C15) + i * 2 + 1;
    c->mask_rng = c->rng ^ UINT64_C (0xD1B54A32D192ED03);
    if (0 != lg_stream_init (&c->ws, &c->mask_rng))
    {
      fprintf (stderr, "load: stream_init2 failed\n");
      return 2;
    }
    c->fd = lg_socket ("load");
    if (c->fd < 0)
      return 2;
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
    uint64_t t = lg_now_ns ();
    if (t >= deadline)
    {
      fprintf (stderr, "load: timed out after %u s\n", timeout_s);
      break;
    }
    if ((pump (ep, 1000, &active) < 0) && (EINTR != errno))
    {
      perror ("load: epoll_wait");
      break;
    }
  }
  stop = lg_now_ns ();

  expected = (unsigned long long) n_conns * n_rounds;
  lost = expected - n_lat;
  secs = (double) (stop - start) / 1e9;
  qsort (lat, n_lat, sizeof (*lat), lg_cmp_u64);
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
    SSL_free (conns[i].ssl);
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
