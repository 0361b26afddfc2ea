/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file cpu.h
 * @brief Run-time choice between the portable and the SIMD variants of
 *        the unmasking and UTF-8 code.
 *
 * Each variant is a plain function; the dispatching entry points
 * (ws_mask_copy, ws_utf8_check, ws_utf8_unmask_check) call through a
 * pointer that is resolved on first use, once per process.  The tests
 * reach every variant the CPU can run through ws_simd_impls().
 */
#ifndef WS_CPU_H
#define WS_CPU_H 1

#include "config.h"

#include <stddef.h>
#include <stdint.h>

#if defined(WS_ENABLE_SIMD) && defined(__x86_64__) && defined(__GNUC__)
/** The x86-64 variants are compiled in. */
#define WS_SIMD_X86 1
#endif

/** CPU features the variants need. */
enum ws_cpu_feature
{
  WS_CPU_SSE2 = 1,
  WS_CPU_SSSE3 = 2,
  WS_CPU_AVX2 = 4
};

/** The features of this CPU (and OS) that the build can use; cached. */
unsigned ws_cpu_features (void);

typedef void (*ws_mask_fn) (void *dst, const void *src, size_t len,
                            const uint8_t key[4], uint64_t offset);
typedef size_t (*ws_utf8_check_fn) (int *step, const unsigned char *s,
                                    size_t len);
typedef size_t (*ws_utf8_unmask_fn) (int *step, unsigned char *dst,
                                     const unsigned char *src, size_t len,
                                     const uint8_t key[4], uint64_t offset);

/** One variant: all three functions, from one instruction set. */
struct ws_simd_impl
{
  const char *name;
  /** The ws_cpu_feature bits it needs (0: portable). */
  unsigned needs;
  ws_mask_fn mask;
  ws_utf8_check_fn utf8_check;
  ws_utf8_unmask_fn utf8_unmask;
};

/**
 * The variants this build has and this CPU runs, portable first, best
 * last.
 * @param[out] list the array
 * @return its length (at least 1)
 */
size_t ws_simd_impls (const struct ws_simd_impl **list);

/** The variant the entry points use: the best one. */
const struct ws_simd_impl *ws_simd_best (void);

/* The variants (declared for cpu.c's table and for the tests). */
void ws_mask_copy_portable (void *dst, const void *src, size_t len,
                            const uint8_t key[4], uint64_t offset);
size_t ws_utf8_check_portable (int *step, const unsigned char *s, size_t len);
size_t ws_utf8_unmask_check_portable (int *step, unsigned char *dst,
                                      const unsigned char *src, size_t len,
                                      const uint8_t key[4], uint64_t offset);
#ifdef WS_SIMD_X86
void ws_mask_copy_sse2 (void *dst, const void *src, size_t len,
                        const uint8_t key[4], uint64_t offset);
void ws_mask_copy_avx2 (void *dst, const void *src, size_t len,
                        const uint8_t key[4], uint64_t offset);
size_t ws_utf8_check_ssse3 (int *step, const unsigned char *s, size_t len);
size_t ws_utf8_unmask_check_ssse3 (int *step, unsigned char *dst,
                                   const unsigned char *src, size_t len,
                                   const uint8_t key[4], uint64_t offset);
size_t ws_utf8_check_avx2 (int *step, const unsigned char *s, size_t len);
size_t ws_utf8_unmask_check_avx2 (int *step, unsigned char *dst,
                                  const unsigned char *src, size_t len,
                                  const uint8_t key[4], uint64_t offset);
#endif

#endif
