/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file cpu.c
 * @brief Which variant of the unmasking and UTF-8 code this CPU runs,
 *        and the entry points (ws_mask_copy, ws_utf8_check,
 *        ws_utf8_unmask_check) that call it.
 *
 * The answer is computed on first use and then only read; two threads
 * that race on the first use compute the same value, and the relaxed
 * atomics make that race well-defined.
 */
#include "cpu.h"
#include "mask.h"
#include "utf8.h"

#include <stdbool.h>
#include <stddef.h>

/* SSE2 is part of x86-64; the other variants need a CPU check. */
static const struct ws_simd_impl impls[] = {
  { "portable", 0, ws_mask_copy_portable, ws_utf8_check_portable,
    ws_utf8_unmask_check_portable },
#ifdef WS_SIMD_X86
  /* SSE2 masking with the SSSE3 validator (it needs PSHUFB). */
  { "ssse3", WS_CPU_SSE2 | WS_CPU_SSSE3, ws_mask_copy_sse2, ws_utf8_check_ssse3,
    ws_utf8_unmask_check_ssse3 },
  { "avx2", WS_CPU_SSE2 | WS_CPU_SSSE3 | WS_CPU_AVX2, ws_mask_copy_avx2,
    ws_utf8_check_avx2, ws_utf8_unmask_check_avx2 },
#endif
};
#define N_IMPLS (sizeof (impls) / sizeof (impls[0]))

/** Features plus one, so that 0 means "not yet known". */
static unsigned features_cache;

unsigned
ws_cpu_features (void)
{
  unsigned f = __atomic_load_n (&features_cache, __ATOMIC_RELAXED);

  if (0 != f)
    return f - 1;
#ifdef WS_SIMD_X86
  /* Needed when called from a constructor that runs before libgcc's. */
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("sse2"))
    f |= WS_CPU_SSE2;
  if (__builtin_cpu_supports ("ssse3"))
    f |= WS_CPU_SSSE3;
  /* GCC's check covers the OS saving the YMM registers too. */
  if (__builtin_cpu_supports ("avx2"))
    f |= WS_CPU_AVX2;
#endif
  __atomic_store_n (&features_cache, f + 1, __ATOMIC_RELAXED);
  return f;
}

size_t
ws_simd_impls (const struct ws_simd_impl **list)
{
  unsigned f = ws_cpu_features ();
  size_t n = 0;

  /* Each variant needs what the one before it needs, and more. */
  while ((n < N_IMPLS) && (impls[n].needs == (impls[n].needs & f)))
    n++;
  *list = impls;
  return n;
}

const struct ws_simd_impl *
ws_simd_best (void)
{
  static const struct ws_simd_impl *best;
  const struct ws_simd_impl *b = __atomic_load_n (&best, __ATOMIC_RELAXED);

  if (NULL == b)
  {
    const struct ws_simd_impl *list;
    size_t n = ws_simd_impls (&list);
    b = &list[n - 1];
    __atomic_store_n (&best, b, __ATOMIC_RELAXED);
  }
  return b;
}

/* The entry points the codecs call.  The choice lives here, above the
   variants, so that no variant calls back up into this file. */

/** The variant in use; NULL until the first call resolves it. */
static ws_mask_fn mask_fn;

void
ws_mask_copy (void *dst, const void *src, size_t len, const uint8_t key[4],
              uint64_t offset)
{
  ws_mask_fn f = __atomic_load_n (&mask_fn, __ATOMIC_RELAXED);

  if (NULL == f)
  {
    f = ws_simd_best ()->mask;
    __atomic_store_n (&mask_fn, f, __ATOMIC_RELAXED);
  }
  f (dst, src, len, key, offset);
}

/* The variants in use; NULL until the first call resolves them. */
static ws_utf8_check_fn check_fn;
static ws_utf8_unmask_fn unmask_fn;

size_t
ws_utf8_check (int *step, const unsigned char *s, size_t len)
{
  ws_utf8_check_fn f = __atomic_load_n (&check_fn, __ATOMIC_RELAXED);

  if (NULL == f)
  {
    f = ws_simd_best ()->utf8_check;
    __atomic_store_n (&check_fn, f, __ATOMIC_RELAXED);
  }
  return f (step, s, len);
}

size_t
ws_utf8_unmask_check (int *step, unsigned char *dst, const unsigned char *src,
                      size_t len, const uint8_t key[4], uint64_t offset)
{
  ws_utf8_unmask_fn f = __atomic_load_n (&unmask_fn, __ATOMIC_RELAXED);

  if (NULL == f)
  {
    f = ws_simd_best ()->utf8_unmask;
    __atomic_store_n (&unmask_fn, f, __ATOMIC_RELAXED);
  }
  return f (step, dst, src, len, key, offset);
}
