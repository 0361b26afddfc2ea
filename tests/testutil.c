/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file testutil.c
 * @brief Shared helpers for the Check suites.
 */
/* mmap (for the fenced buffers) is POSIX, beyond C99. */
#define _DEFAULT_SOURCE 1
#define _DARWIN_C_SOURCE 1
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#define HAVE_FENCE 1
#endif

long tu_alloc_live;
long tu_alloc_calls;
size_t tu_alloc_largest;
long tu_alloc_resizes;
long tu_alloc_fail_at = -1;
int tu_alloc_fail_sticky;

/* Each block carries its size in front, so that realloc and free can be
   checked and the largest request recorded. */
#define TU_HDR 16

void
tu_alloc_reset (void)
{
  tu_alloc_live = 0;
  tu_alloc_calls = 0;
  tu_alloc_largest = 0;
  tu_alloc_resizes = 0;
  tu_alloc_fail_at = -1;
  tu_alloc_fail_sticky = 0;
}

static int
tu_should_fail (size_t len)
{
  long n = tu_alloc_calls++;
  if (len > tu_alloc_largest)
    tu_alloc_largest = len;
  if (tu_alloc_fail_at < 0)
    return 0;
  return n == tu_alloc_fail_at
         || (tu_alloc_fail_sticky && n > tu_alloc_fail_at);
}

void *
tu_malloc (size_t len)
{
  unsigned char *p;
  if (tu_should_fail (len) || len > SIZE_MAX - TU_HDR)
    return NULL;
  p = malloc (len + TU_HDR);
  if (NULL == p)
    return NULL;
  memcpy (p, &len, sizeof (len));
  tu_alloc_live++;
  return p + TU_HDR;
}

void *
tu_realloc (void *buf, size_t len)
{
  unsigned char *p;
  size_t old;
  if (NULL == buf)
    return tu_malloc (len);
  if (tu_should_fail (len) || len > SIZE_MAX - TU_HDR)
    return NULL;
  memcpy (&old, (unsigned char *) buf - TU_HDR, sizeof (old));
  p = realloc ((unsigned char *) buf - TU_HDR, len + TU_HDR);
  if (NULL == p)
    return NULL;
  if (len != old)
    tu_alloc_resizes++;
  memcpy (p, &len, sizeof (len));
  return p + TU_HDR;
}

void
tu_free (void *buf)
{
  if (NULL == buf)
    return;
  TU_REQUIRE (tu_alloc_live > 0);
  tu_alloc_live--;
  free ((unsigned char *) buf - TU_HDR);
}

size_t
tu_rng (void *cls, void *buf, size_t len)
{
  static unsigned fixed;
  unsigned *counter = (NULL != cls) ? (unsigned *) cls : &fixed;
  unsigned char *b = buf;
  size_t i;
  for (i = 0; i < len; i++)
    b[i] = (unsigned char) (0x11 * (++*counter));
  return len;
}

size_t
tu_rng_fail (void *cls, void *buf, size_t len)
{
  (void) cls;
  (void) buf;
  (void) len;
  return 0;
}

struct MHD_WebSocketStream *
tu_stream (int flags, size_t max_payload)
{
  struct MHD_WebSocketStream *ws = NULL;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, flags, max_payload,
                                                tu_malloc, tu_realloc, tu_free,
                                                NULL, tu_rng),
                    MHD_WEBSOCKET_STATUS_OK);
  ck_assert_ptr_nonnull (ws);
  return ws;
}


void
tu_stream_end (struct MHD_WebSocketStream *ws)
{
  ck_assert_int_eq (MHD_websocket_stream_free (ws), MHD_WEBSOCKET_STATUS_OK);
  ck_assert_int_eq (tu_alloc_live, 0);
}

static void
tu_record (struct tu_result *r, int status, const char *payload, size_t len,
           size_t offset)
{
  struct tu_event *e;
  ck_assert_msg (r->count < TU_MAX_EVENTS, "too many decode events");
  e = &r->ev[r->count++];
  e->status = status;
  e->len = len;
  e->offset = offset;
  e->payload = NULL;
  if (NULL != payload)
  {
    e->payload = malloc (len + 1);
    ck_assert_ptr_nonnull (e->payload);
    memcpy (e->payload, payload, len + 1);
  }
}

void
tu_decode (struct tu_result *r, int flags, size_t max, const void *data,
           size_t len, size_t first, size_t step)
{
  const char *in = data;
  struct MHD_WebSocketStream *ws;
  size_t pos = 0;
  long live_before = tu_alloc_live;
  int done = 0;

  memset (r, 0, sizeof (*r));
  ws = tu_stream (flags, max);
  while (! done && pos < len)
  {
    size_t chunk = (0 == pos) ? first : step;
    size_t off = 0;
    if (0 == chunk || chunk > len - pos)
      chunk = len - pos;
    /* Re-feed the unconsumed rest of the chunk until it is used up. */
    while (off < chunk)
    {
      size_t rd = 12345;
      char *payload = (char *) 1;
      size_t plen = 12345;
      int st = MHD_websocket_decode (ws, in + pos + off, chunk - off, &rd,
                                     &payload, &plen);
      ck_assert_uint_le (rd, chunk - off);
      if (NULL != payload)
      {
        ck_assert_uint_gt (plen, 0);
        ck_assert_int_eq (payload[plen], '\0');
      }
      else
        ck_assert_uint_eq (plen, 0);
      if (st < 0)
      {
        tu_record (r, st, payload, plen, pos + off + rd);
        if (NULL != payload)
          MHD_websocket_free (ws, payload);
        off += rd;
        done = 1;
        break;
      }
      off += rd;
      if (MHD_WEBSOCKET_STATUS_OK == st)
      {
        ck_assert_uint_eq (off, chunk);
        ck_assert_ptr_null (payload);
        break;
      }
      ck_assert_msg (rd > 0, "a frame status without consuming a byte");
      tu_record (r, st, payload, plen, pos + off);
      if (NULL != payload)
        MHD_websocket_free (ws, payload);
    }
    pos += off;
  }
  r->consumed = pos;
  r->validity = MHD_websocket_stream_is_valid (ws);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), MHD_WEBSOCKET_STATUS_OK);
  ck_assert_int_eq (tu_alloc_live, live_before);
}

void
tu_result_free (struct tu_result *r)
{
  size_t i;
  for (i = 0; i < r->count; i++)
    free (r->ev[i].payload);
  r->count = 0;
}

static void
tu_same (const struct tu_result *a, const struct tu_result *b, const char *how,
         size_t at)
{
  size_t i;
  ck_assert_msg (a->count == b->count, "%s %zu: %zu events instead of %zu", how,
                 at, b->count, a->count);
  for (i = 0; i < a->count; i++)
  {
    const struct tu_event *x = &a->ev[i];
    const struct tu_event *y = &b->ev[i];
    ck_assert_msg (x->status == y->status,
                   "%s %zu: event %zu status %d instead of %d", how, at, i,
                   y->status, x->status);
    ck_assert_msg (x->len == y->len, "%s %zu: event %zu length %zu not %zu",
                   how, at, i, y->len, x->len);
    ck_assert_msg (
      (NULL == x->payload) == (NULL == y->payload)
        && (NULL == x->payload || 0 == memcmp (x->payload, y->payload, x->len)),
      "%s %zu: event %zu payload differs", how, at, i);
    if (x->status < 0)
      ck_assert_msg (x->offset == y->offset,
                     "%s %zu: error offset %zu instead of %zu", how, at,
                     y->offset, x->offset);
  }
  ck_assert_msg (a->validity == b->validity,
                 "%s %zu: validity %d instead of %d", how, at, b->validity,
                 a->validity);
}

void
tu_decode_every_split (struct tu_result *r, int flags, size_t max,
                       const void *data, size_t len)
{
  struct tu_result other;
  size_t at;

  tu_decode (r, flags, max, data, len, 0, 0);
  for (at = 1; at < len; at++)
  {
    tu_decode (&other, flags, max, data, len, at, 0);
    tu_same (r, &other, "split at", at);
    tu_result_free (&other);
  }
  tu_decode (&other, flags, max, data, len, 1, 1);
  tu_same (r, &other, "one byte per call, length", len);
  tu_result_free (&other);
}

void
tu_expect_one (const struct tu_result *r, int status, const void *payload,
               size_t len)
{
  ck_assert_uint_eq (r->count, 1);
  ck_assert_int_eq (r->ev[0].status, status);
  ck_assert_uint_eq (r->ev[0].len, len);
  if (0 == len)
    ck_assert_ptr_null (r->ev[0].payload);
  else
    ck_assert_mem_eq (r->ev[0].payload, payload, len);
}

size_t
tu_frame (void *out, unsigned b0, const void *payload, size_t len,
          const uint8_t *mask)
{
  unsigned char *o = out;
  const unsigned char *p = payload;
  size_t n = 0;
  size_t i;
  unsigned mbit = (NULL != mask) ? 0x80u : 0u;

  o[n++] = (unsigned char) b0;
  if (len < 126)
    o[n++] = (unsigned char) (mbit | len);
  else if (len <= 0xFFFF)
  {
    o[n++] = (unsigned char) (mbit | 126);
    o[n++] = (unsigned char) (len >> 8);
    o[n++] = (unsigned char) len;
  }
  else
  {
    uint64_t l = len;
    o[n++] = (unsigned char) (mbit | 127);
    for (i = 0; i < 8; i++)
      o[n++] = (unsigned char) (l >> (56 - 8 * i));
  }
  if (NULL != mask)
  {
    memcpy (o + n, mask, 4);
    n += 4;
  }
  for (i = 0; i < len; i++)
    o[n + i] = (unsigned char) (p[i] ^ ((NULL != mask) ? mask[i & 3] : 0));
  return n + len;
}


void
tu_fence_init (struct tu_fence *f, size_t max_len)
{
#ifdef HAVE_FENCE
  long ps = sysconf (_SC_PAGESIZE);
  void *m;
  ck_assert_int_gt (ps, 0);
  f->page = (size_t) ps;
  f->area_size = ((max_len + f->page) / f->page) * f->page;
  m = mmap (NULL, f->area_size + 2 * f->page, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert_msg (MAP_FAILED != m, "mmap failed");
  f->map = m;
  f->area = f->map + f->page;
  ck_assert_int_eq (mprotect (f->map, f->page, PROT_NONE), 0);
  ck_assert_int_eq (mprotect (f->area + f->area_size, f->page, PROT_NONE), 0);
#else
  (void) max_len;
  f->map = NULL;
  f->area = NULL;
#endif
}


unsigned char *
tu_fence_place (struct tu_fence *f, size_t len, int at_end)
{
#ifdef HAVE_FENCE
  return at_end ? f->area + f->area_size - len : f->area;
#else
  (void) at_end;
  free (f->area);
  f->area = malloc ((0 == len) ? 1 : len);
  ck_assert_ptr_nonnull (f->area);
  return f->area;
#endif
}


void
tu_fence_free (struct tu_fence *f)
{
#ifdef HAVE_FENCE
  munmap (f->map, f->area_size + 2 * f->page);
#else
  free (f->area);
#endif
}
