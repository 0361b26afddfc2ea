/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file mask_x86.c
 * @brief Fused copy and XOR with the masking key in SSE2 (16-byte) and
 *        AVX2 (32-byte) registers.
 *
 * The stores are aligned: the bytes up to the first aligned destination
 * are masked one by one and the key is rotated by as many positions, so
 * every vector starts at the same key phase.  The loads may be unaligned.
 */
#include "cpu.h"
#include "mask.h"

#ifdef WS_SIMD_X86

#include <immintrin.h>

/** Masks bytes until @a *d is aligned to @a align (or @a *len runs out);
    advances the pointers, the length and the offset. */
static inline void
align_head (uint8_t **d, const uint8_t **s, size_t *len, const uint8_t key[4],
            uint64_t *offset, size_t align)
{
  size_t head = (size_t) (-(uintptr_t) *d) & (align - 1);

  if (head > *len)
    head = *len;
  ws_mask_bytes (*d, *s, head, key, *offset);
  *d += head;
  *s += head;
  *len -= head;
  *offset += head;
}

void
ws_mask_copy_sse2 (void *dst, const void *src, size_t len, const uint8_t key[4],
                   uint64_t offset)
{
  uint8_t *d = dst;
  const uint8_t *s = src;
  __m128i k;

  if (len < 32)
  {
    ws_mask_copy_portable (dst, src, len, key, offset);
    return;
  }
  align_head (&d, &s, &len, key, &offset, 16);
  k = _mm_set1_epi32 ((int) ws_mask_word (key, offset));
  while (len >= 64)
  {
    __m128i a = _mm_loadu_si128 ((const void *) s);
    __m128i b = _mm_loadu_si128 ((const void *) (s + 16));
    __m128i c = _mm_loadu_si128 ((const void *) (s + 32));
    __m128i e = _mm_loadu_si128 ((const void *) (s + 48));
    _mm_store_si128 ((void *) d, _mm_xor_si128 (a, k));
    _mm_store_si128 ((void *) (d + 16), _mm_xor_si128 (b, k));
    _mm_store_si128 ((void *) (d + 32), _mm_xor_si128 (c, k));
    _mm_store_si128 ((void *) (d + 48), _mm_xor_si128 (e, k));
    s += 64;
    d += 64;
    len -= 64;
  }
  while (len >= 16)
  {
    __m128i a = _mm_loadu_si128 ((const void *) s);
    _mm_store_si128 ((void *) d, _mm_xor_si128 (a, k));
    s += 16;
    d += 16;
    len -= 16;
  }
  /* Multiples of 16 were done: the phase is unchanged. */
  ws_mask_copy_portable (d, s, len, key, offset);
}

__attribute__ ((target ("avx2"))) void
ws_mask_copy_avx2 (void *dst, const void *src, size_t len, const uint8_t key[4],
                   uint64_t offset)
{
  uint8_t *d = dst;
  const uint8_t *s = src;
  __m256i k;

  if (len < 64)
  {
    ws_mask_copy_portable (dst, src, len, key, offset);
    return;
  }
  align_head (&d, &s, &len, key, &offset, 32);
  k = _mm256_set1_epi32 ((int) ws_mask_word (key, offset));
  while (len >= 128)
  {
    __m256i a = _mm256_loadu_si256 ((const void *) s);
    __m256i b = _mm256_loadu_si256 ((const void *) (s + 32));
    __m256i c = _mm256_loadu_si256 ((const void *) (s + 64));
    __m256i e = _mm256_loadu_si256 ((const void *) (s + 96));
    _mm256_store_si256 ((void *) d, _mm256_xor_si256 (a, k));
    _mm256_store_si256 ((void *) (d + 32), _mm256_xor_si256 (b, k));
    _mm256_store_si256 ((void *) (d + 64), _mm256_xor_si256 (c, k));
    _mm256_store_si256 ((void *) (d + 96), _mm256_xor_si256 (e, k));
    s += 128;
    d += 128;
    len -= 128;
  }
  while (len >= 32)
  {
    __m256i a = _mm256_loadu_si256 ((const void *) s);
    _mm256_store_si256 ((void *) d, _mm256_xor_si256 (a, k));
    s += 32;
    d += 32;
    len -= 32;
  }
  ws_mask_copy_portable (d, s, len, key, offset);
}

#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int ws_mask_x86_unused;
#endif
