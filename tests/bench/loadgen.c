/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file loadgen.c
 * @brief Shared plumbing of the load generators (see loadgen.h).
 */
#define _GNU_SOURCE 1

#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

uint64_t
lg_now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}


/** xorshift64*: deterministic and fast; quality is beside the point. */
uint64_t
lg_next_rand (uint64_t *s)
{
  uint64_t x = *s;

  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * UINT64_C (0x2545F4914F6CDD1D);
}


/** The stream's masking generator; @a cls is a uint64_t state. */
size_t
lg_mask_rng (void *cls, void *buf, size_t len)
{
  unsigned char *p = buf;
  size_t i;

  for (i = 0; i < len; i++)
    p[i] = (unsigned char) (lg_next_rand (cls) >> 56);
  return len;
}


/** qsort comparison of uint64_t (latencies). */
int
lg_cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a;
  uint64_t y = *(const uint64_t *) b;

  return (x > y) - (x < y);
}


/**
 * Takes all the descriptors the system allows: one per connection.
 * Returns -1, with the limit in @a limit, when that is too few for
 * @a n_conns connections.
 */
int
lg_raise_fd_limit (unsigned n_conns, unsigned long long *limit)
{
  struct rlimit rl;

  if (0 != getrlimit (RLIMIT_NOFILE, &rl))
    return 0;
  rl.rlim_cur = rl.rlim_max;
  (void) setrlimit (RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t) n_conns + 16)
  {
    *limit = (unsigned long long) rl.rlim_cur;
    return -1;
  }
  return 0;
}


/** A client-mode stream masking with the generator state @a rng. */
int
lg_stream_init (struct MHD_WebSocketStream **ws, uint64_t *rng)
{
  return (MHD_WEBSOCKET_STATUS_OK
          == MHD_websocket_stream_init2 (ws, MHD_WEBSOCKET_FLAG_CLIENT, 0,
                                         malloc, realloc, free, rng,
                                         lg_mask_rng))
           ? 0
           : -1;
}


void
lg_loopback (struct sockaddr_in *sa, unsigned long port)
{
  memset (sa, 0, sizeof (*sa));
  sa->sin_family = AF_INET;
  sa->sin_port = htons ((uint16_t) port);
  sa->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
}


/** A non-blocking TCP socket; -1 (said on stderr as @a prog) on failure. */
int
lg_socket (const char *prog)
{
  int one = 1;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

  if (fd < 0)
  {
    fprintf (stderr, "%s: socket: %s\n", prog, strerror (errno));
    return -1;
  }
  /* Round trips, not throughput: do not let Nagle hold small frames. */
  (void) setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
  return fd;
}


/**
 * Asks epoll for EPOLLOUT on @a fd too when @a want, unless @a *want_out
 * says it already is so.  Returns -1 when epoll_ctl fails.
 */
int
lg_watch (int ep, int fd, void *ptr, int *want_out, int want)
{
  struct epoll_event ev;
  int ret;

  if (want == *want_out)
    return 0;
  memset (&ev, 0, sizeof (ev));
  ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
  ev.data.ptr = ptr;
  ret = epoll_ctl (ep, EPOLL_CTL_MOD, fd, &ev);
  *want_out = want;
  return (0 == ret) ? 0 : -1;
}


/**
 * Sends @a buf from @a *off on until all is sent or the socket is full
 * (@a *off tells which).  Returns -1, errno set, on a broken connection.
 */
int
lg_send (int fd, const char *buf, size_t len, size_t *off)
{
  while (*off < len)
  {
    ssize_t n = send (fd, buf + *off, len - *off, MSG_NOSIGNAL);

    if (n < 0)
    {
      if (EINTR == errno)
        continue;
      if ((EAGAIN == errno) || (EWOULDBLOCK == errno))
        return 0;
      return -1;
    }
    *off += (size_t) n;
  }
  return 0;
}


/**
 * Appends one read to @a buf of @a size bytes, keeping one for a NUL.
 * Returns 1 when bytes came, 0 when none are there yet, or an LG_RECV_*
 * failure.
 */
int
lg_recv (int fd, char *buf, size_t *len, size_t size)
{
  for (;;)
  {
    ssize_t n;
    size_t room = size - 1 - *len;

    if (0 == room)
      return LG_RECV_FULL;
    n = recv (fd, buf + *len, room, 0);
    if (n < 0)
    {
      if ((EAGAIN == errno) || (EWOULDBLOCK == errno))
        return 0;
      if (EINTR == errno)
        continue;
      return LG_RECV_ERROR;
    }
    if (0 == n)
      return LG_RECV_CLOSED;
    *len += (size_t) n;
    return 1;
  }
}


static void
base64 (const unsigned char *in, size_t len, char *out)
{
  static const char d[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i;

  for (i = 0; i + 2 < len; i += 3)
  {
    *out++ = d[in[i] >> 2];
    *out++ = d[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
    *out++ = d[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
    *out++ = d[in[i + 2] & 63];
  }
  if (len - i == 1)
  {
    *out++ = d[in[i] >> 2];
    *out++ = d[(in[i] & 3) << 4];
    *out++ = '=';
    *out++ = '=';
  }
  else if (len - i == 2)
  {
    *out++ = d[in[i] >> 2];
    *out++ = d[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
    *out++ = d[(in[i + 1] & 15) << 2];
    *out++ = '=';
  }
  *out = '\0';
}


/**
 * The non-blocking connect on @a fd has finished: checks it, draws a key
 * from @a rng, puts the expected Sec-WebSocket-Accept (29 bytes) in
 * @a accept and the upgrade request for @a target in @a request.
 * Returns NULL, or why it failed.
 */
const char *
lg_connected (int fd, uint64_t *rng, const char *target, char *accept,
              char *request, size_t request_size, size_t *request_len)
{
  int err = 0;
  socklen_t len = sizeof (err);
  unsigned char key[16];
  char key64[32];
  int n;

  if ((0 != getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &len)) || (0 != err))
    return "connect failed";
  lg_mask_rng (rng, key, sizeof (key));
  base64 (key, sizeof (key), key64);
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_create_accept_header (key64, accept))
    return "create_accept_header failed";
  n = snprintf (request, request_size,
                "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n",
                target, key64);
  *request_len = (size_t) n;
  return NULL;
}


/**
 * Parses the 101 response in @a in (@a in_len bytes and room for a NUL
 * after them).  Returns its length once it is complete and carries
 * @a accept, 0 while it is incomplete, -1 with @a why on failure.
 */
long
lg_handshake (char *in, size_t in_len, size_t max, const char *accept,
              const char **why)
{
  char *end;
  char *p;

  in[in_len] = '\0';
  end = strstr (in, "\r\n\r\n");
  if (NULL == end)
  {
    if (in_len < max)
      return 0;
    *why = "handshake response too long";
    return -1;
  }
  *end = '\0';
  if (0 != strncmp (in, "HTTP/1.1 101", 12))
  {
    *why = "no 101 response";
    return -1;
  }
  p = strcasestr (in, "\r\nSec-WebSocket-Accept:");
  if (NULL == p)
  {
    *why = "no Sec-WebSocket-Accept";
    return -1;
  }
  p += strlen ("\r\nSec-WebSocket-Accept:");
  while ((' ' == *p) || ('\t' == *p))
    p++;
  if ((0 != strncmp (p, accept, 28)) || (('\r' != p[28]) && ('\0' != p[28])))
  {
    *why = "wrong Sec-WebSocket-Accept";
    return -1;
  }
  return (long) (end - in) + 4;
}

long long
lg_proc_rss_kib (long pid)
{
  char path[64];
  char line[256];
  long long kib = -1;
  FILE *f;

  snprintf (path, sizeof (path), "/proc/%ld/status", pid);
  f = fopen (path, "r");
  if (NULL == f)
    return -1;
  while (NULL != fgets (line, sizeof (line), f))
    if (0 == strncmp (line, "VmRSS:", 6))
      kib = strtoll (line + 6, NULL, 10);
  fclose (f);
  return kib;
}
