/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file fuzz_common.h
 * @brief Helpers shared by the fuzz harnesses: a counting allocator that
 *        fails on demand, a deterministic RNG and a reference UTF-8
 *        validator written independently of the library's.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H 1

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "microhttpd_ws.h"

/* Abort with a message; libFuzzer and the replayer both report aborts. */
#define FZ_CHECK(cond)                                                         \
  do                                                                           \
  {                                                                            \
    if (! (cond))                                                              \
    {                                                                          \
      fprintf (stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__,  \
               #cond);                                                         \
      abort ();                                                                \
    }                                                                          \
  } while (0)

/* The callbacks carry no closure, so the allocator state is global. */
static long fz_live;
static unsigned long fz_nallocs;
static uint32_t fz_fail_mask;
static int fz_failing;
static int fz_failed;
/* Largest single allocation allowed right now; 0 for no limit. */
static size_t fz_alloc_limit;

static inline void
fz_alloc_reset (uint32_t fail_mask)
{
  fz_nallocs = 0;
  fz_fail_mask = fail_mask;
  fz_failing = (0 != fail_mask);
  fz_failed = 0;
  fz_alloc_limit = 0;
}

/* Allocation number n fails when bit n of the mask is set; after the
   first failure nothing fails any more, so a retry must succeed. */
static inline int
fz_should_fail (size_t len)
{
  if ((0 != fz_alloc_limit) && (len > fz_alloc_limit))
  {
    fprintf (stderr, "allocation of %zu bytes exceeds the limit %zu\n", len,
             fz_alloc_limit);
    abort ();
  }
  unsigned long n = fz_nallocs++;
  if (! fz_failing || n >= 32)
    return 0;
  if (0 == (fz_fail_mask & ((uint32_t) 1 << n)))
    return 0;
  fz_failing = 0;
  fz_failed = 1;
  return 1;
}

static inline void *
fz_malloc (size_t len)
{
  void *p;
  if (fz_should_fail (len))
    return NULL;
  p = malloc (len ? len : 1);
  if (NULL != p)
    fz_live++;
  return p;
}

static inline void *
fz_realloc (void *buf, size_t len)
{
  void *p;
  if (fz_should_fail (len))
    return NULL;
  p = realloc (buf, len ? len : 1);
  if ((NULL != p) && (NULL == buf))
    fz_live++;
  return p;
}

static inline void
fz_free (void *buf)
{
  if (NULL == buf)
    return;
  fz_live--;
  free (buf);
}

/* xorshift32: reproducible masks and split sizes. */
static uint32_t fz_rng_state = 1;

static inline uint32_t
fz_rand (void)
{
  uint32_t x = fz_rng_state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  fz_rng_state = x;
  return x;
}

static inline void
fz_seed (uint32_t s)
{
  fz_rng_state = s ? s : 0x9e3779b9u;
}

static inline size_t
fz_rng_cb (void *cls, void *buf, size_t len)
{
  size_t i;
  (void) cls;
  for (i = 0; i < len; i++)
    ((unsigned char *) buf)[i] = (unsigned char) fz_rand ();
  return len;
}

#define FZ_UTF8_ERROR (-1)

/* One byte of the RFC 3629 automaton, states named like the UTF8STEP
   enum; returns the next state or FZ_UTF8_ERROR. */
static inline int
fz_utf8_next (int st, unsigned char c)
{
  switch (st)
  {
  case MHD_WEBSOCKET_UTF8STEP_NORMAL:
    if (c < 0x80)
      return MHD_WEBSOCKET_UTF8STEP_NORMAL;
    if ((c >= 0xC2) && (c <= 0xDF))
      return MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1;
    if (c == 0xE0)
      return MHD_WEBSOCKET_UTF8STEP_UTF3TAIL1_1OF2;
    if (c == 0xED)
      return MHD_WEBSOCKET_UTF8STEP_UTF3TAIL2_1OF2;
    if ((c >= 0xE1) && (c <= 0xEF))
      return MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2;
    if (c == 0xF0)
      return MHD_WEBSOCKET_UTF8STEP_UTF4TAIL1_1OF3;
    if (c == 0xF4)
      return MHD_WEBSOCKET_UTF8STEP_UTF4TAIL2_1OF3;
    if ((c >= 0xF1) && (c <= 0xF3))
      return MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_1OF3;
    return FZ_UTF8_ERROR;
  case MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1:
  case MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2:
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3:
    return (c >= 0x80 && c <= 0xBF) ? MHD_WEBSOCKET_UTF8STEP_NORMAL
                                    : FZ_UTF8_ERROR;
  case MHD_WEBSOCKET_UTF8STEP_UTF3TAIL1_1OF2:
    return (c >= 0xA0 && c <= 0xBF) ? MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2
                                    : FZ_UTF8_ERROR;
  case MHD_WEBSOCKET_UTF8STEP_UTF3TAIL2_1OF2:
    return (c >= 0x80 && c <= 0x9F) ? MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2
                                    : FZ_UTF8_ERROR;
  case MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2:
    return (c >= 0x80 && c <= 0xBF) ? MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2
                                    : FZ_UTF8_ERROR;
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL1_1OF3:
    return (c >= 0x90 && c <= 0xBF) ? MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3
                                    : FZ_UTF8_ERROR;
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL2_1OF3:
    return (c >= 0x80 && c <= 0x8F) ? MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3
                                    : FZ_UTF8_ERROR;
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_1OF3:
    return (c >= 0x80 && c <= 0xBF) ? MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3
                                    : FZ_UTF8_ERROR;
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3:
    return (c >= 0x80 && c <= 0xBF) ? MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3
                                    : FZ_UTF8_ERROR;
  default:
    return FZ_UTF8_ERROR;
  }
}

/* Runs the automaton from st over buf; FZ_UTF8_ERROR or the end state. */
static inline int
fz_utf8_run (int st, const unsigned char *buf, size_t len)
{
  size_t i;
  for (i = 0; i < len && st != FZ_UTF8_ERROR; i++)
    st = fz_utf8_next (st, buf[i]);
  return st;
}

/* Whole, complete, valid UTF-8. */
static inline int
fz_utf8_valid (const void *buf, size_t len)
{
  return MHD_WEBSOCKET_UTF8STEP_NORMAL
         == fz_utf8_run (MHD_WEBSOCKET_UTF8STEP_NORMAL,
                         (const unsigned char *) buf, len);
}

#endif /* FUZZ_COMMON_H */
