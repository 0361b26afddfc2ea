/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file utf8_x86.c
 * @brief UTF-8 validation in SSSE3 (16-byte) and AVX2 (32-byte)
 *        registers, plain and fused with unmasking.
 *
 * The method follows Keiser and Lemire ("Validating UTF-8 in less than
 * one instruction per byte", 2021): every rule of RFC 3629 that two
 * adjacent bytes can break is decided by three 16-entry table lookups,
 * on the high and low nibble of the first byte and the high nibble of
 * the second, whose results are ANDed; each bit of a table entry stands
 * for one kind of error.  The third and fourth bytes of a sequence are
 * checked apart, from the bytes two and three places before them.
 *
 * The vector loop only answers "valid or not" for a block.  The exact
 * offset of the first bad byte and the state of a sequence cut by the
 * end of the input are left to the portable DFA, which resumes at a
 * character boundary a few bytes before the block that failed, or before
 * the tail; a sequence carried in from the previous call is finished by
 * the DFA too before the vector loop starts.
 */
#include "internal.h"
#include "cpu.h"
#include "mask.h"
#include "utf8.h"

#ifdef WS_SIMD_X86

#include <immintrin.h>

/* The error kinds, one bit each (named after the first byte's role). */
#define TOO_SHORT 0x01  /* a lead byte not followed by a continuation */
#define TOO_LONG 0x02   /* ASCII followed by a continuation */
#define OVERLONG_3 0x04 /* E0 80..9F */
#define TOO_LARGE 0x08  /* F4 90..BF, F5..FF 90..BF */
#define SURROGATE 0x10  /* ED A0..BF */
#define OVERLONG_2 0x20 /* C0, C1 before a continuation */
/* F0 80..8F and F5..FF 80..8F share a bit: no byte pair has both. */
#define OVERLONG_4 0x40
#define TOO_LARGE_1000 0x40
/* Two continuations in a row: fine only as the 3rd or 4th byte. */
#define TWO_CONTS 0x80
/* What the first byte's high nibble decides alone. */
#define CARRY (TOO_SHORT | TOO_LONG | TWO_CONTS)

/* By the high nibble of the first byte. */
static const int8_t first_high[16] = {
  /* 0..7 ASCII */
  TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG,
  TOO_LONG,
  /* 8..B continuation */
  (int8_t) TWO_CONTS, (int8_t) TWO_CONTS, (int8_t) TWO_CONTS,
  (int8_t) TWO_CONTS,
  /* C: 2-byte lead (C0, C1 overlong) */
  TOO_SHORT | OVERLONG_2,
  /* D: 2-byte lead */
  TOO_SHORT,
  /* E: 3-byte lead */
  TOO_SHORT | OVERLONG_3 | SURROGATE,
  /* F: 4-byte lead or never valid */
  TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4
};

/* By the low nibble of the first byte. */
static const int8_t first_low[16] = {
  /* 0: C0, E0, F0 */
  (int8_t) (CARRY | OVERLONG_2 | OVERLONG_3 | OVERLONG_4),
  /* 1: C1 */
  (int8_t) (CARRY | OVERLONG_2),
  /* 2, 3 */
  (int8_t) CARRY, (int8_t) CARRY,
  /* 4: F4 */
  (int8_t) (CARRY | TOO_LARGE),
  /* 5..C: F5..FC */
  (int8_t) (CARRY | TOO_LARGE | TOO_LARGE_1000),
  (int8_t) (CARRY | TOO_LARGE | TOO_LARGE_1000),
  (int8_t) (CARRY | TOO_LARGE | TOO_LARGE_1000),
  (int8_t) (CARRY | TOO_LARGE | TOO_LARGE_1000),
  (int8_t) (CARRY | TOO_LARGE | TOO_LARGE_1000),
  (int8_t) (CARRY | TOO_LARGE | TOO_LARGE_1000),
  (int8_t) (CARRY | TOO_LARGE | TOO_LARGE_1000),
  (int8_t) (CARRY | TOO_LARGE | TOO_LARGE_1000),
  /* D: ED, FD */
  (int8_t) (CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE),
  /* E, F */
  (int8_t) (CARRY | TOO_LARGE | TOO_LARGE_1000),
  (int8_t) (CARRY | TOO_LARGE | TOO_LARGE_1000)
};

/* By the high nibble of the second byte. */
static const int8_t second_high[16] = {
  /* 0..7 ASCII */
  TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
  TOO_SHORT,
  /* 8: 80..8F */
  (int8_t) (TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000
            | OVERLONG_4),
  /* 9: 90..9F */
  (int8_t) (TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE),
  /* A, B: A0..BF */
  (int8_t) (TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE),
  (int8_t) (TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE),
  /* C..F: lead bytes */
  TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT
};

/* A block that ends with these bytes or above at its last three places
   needs continuations from the next block: F0 (4-byte lead), E0, C0. */
static const uint8_t incomplete_max[32] = {
  0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
  0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
  0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xEF, 0xDF, 0xBF
};

static const uint8_t zero_key[4] = { 0, 0, 0, 0 };

/**
 * Where the DFA resumes after the vector loop stopped at @a b: a
 * character boundary at most 6 bytes before it.  Every byte pair before
 * b passed the vector checks, so the text up to three bytes before b
 * ends on a boundary wherever a non-continuation byte starts.
 */
static size_t
resume_point (const unsigned char *t, size_t start, size_t b)
{
  size_t j;

  if (b < start + 3)
    return start;
  j = b - 3;
  while ((j > start) && (0x80 == (t[j] & 0xC0)))
    j--;
  return j;
}

/**
 * Finishes a sequence carried in from the previous call with the DFA.
 * @return the bytes it took; *done is true when that settles the result
 *         (an error, or the input ended)
 */
static size_t
finish_carried (int *step, unsigned char *dst, const unsigned char *src,
                size_t len, const uint8_t *key, uint64_t offset, bool *done)
{
  size_t need = ws_utf8_missing (*step);
  size_t ok;

  *done = false;
  if (0 == need)
    return 0;
  if (need > len)
    need = len;
  if (NULL != dst)
    ok = ws_utf8_unmask_check_portable (step, dst, src, need, key, offset);
  else
    ok = ws_utf8_check_portable (step, src, need);
  *done = (ok != need) || (need == len);
  return ok;
}

/* ------------------------------------------------------------ SSSE3 */

struct tables128
{
  __m128i first_high;
  __m128i first_low;
  __m128i second_high;
  __m128i nibble;
  __m128i third_min;
  __m128i fourth_min;
  __m128i top_bit;
  __m128i incomplete;
};

__attribute__ ((target ("ssse3"))) static inline void
load128 (struct tables128 *t)
{
  t->first_high = _mm_loadu_si128 ((const void *) first_high);
  t->first_low = _mm_loadu_si128 ((const void *) first_low);
  t->second_high = _mm_loadu_si128 ((const void *) second_high);
  t->nibble = _mm_set1_epi8 (0x0F);
  /* Saturating subtraction leaves the top bit exactly for >= E0 and >=
     F0, the leads whose 3rd and 4th bytes must be continuations. */
  t->third_min = _mm_set1_epi8 ((char) (0xE0 - 0x80));
  t->fourth_min = _mm_set1_epi8 ((char) (0xF0 - 0x80));
  t->top_bit = _mm_set1_epi8 ((char) 0x80);
  t->incomplete = _mm_loadu_si128 ((const void *) (incomplete_max + 16));
}

/** The error bits of block @a cur, @a prev being the 16 bytes before. */
__attribute__ ((target ("ssse3"))) static inline __m128i
errors128 (const struct tables128 *t, __m128i cur, __m128i prev)
{
  __m128i p1 = _mm_alignr_epi8 (cur, prev, 15);
  __m128i p2 = _mm_alignr_epi8 (cur, prev, 14);
  __m128i p3 = _mm_alignr_epi8 (cur, prev, 13);
  __m128i fh = _mm_shuffle_epi8 (
    t->first_high, _mm_and_si128 (_mm_srli_epi16 (p1, 4), t->nibble));
  __m128i fl = _mm_shuffle_epi8 (t->first_low, _mm_and_si128 (p1, t->nibble));
  __m128i sh = _mm_shuffle_epi8 (
    t->second_high, _mm_and_si128 (_mm_srli_epi16 (cur, 4), t->nibble));
  __m128i pair = _mm_and_si128 (_mm_and_si128 (fh, fl), sh);
  __m128i must =
    _mm_and_si128 (_mm_or_si128 (_mm_subs_epu8 (p2, t->third_min),
                                 _mm_subs_epu8 (p3, t->fourth_min)),
                   t->top_bit);
  /* TWO_CONTS is an error exactly where no 3rd/4th byte is due. */
  return _mm_xor_si128 (pair, must);
}

__attribute__ ((target ("ssse3"))) static inline bool
nonzero128 (__m128i v)
{
  return 0xFFFF != _mm_movemask_epi8 (_mm_cmpeq_epi8 (v, _mm_setzero_si128 ()));
}

/**
 * The vector loop shared by the plain and the fused SSSE3 validators:
 * @a dst NULL only validates @a src.  Returns where it stopped: at the
 * start of the first 32-byte group with an error, or after the last whole
 * group.
 */
__attribute__ ((target ("ssse3"))) static inline size_t
loop128 (unsigned char *dst, const unsigned char *src, size_t i, size_t len,
         __m128i k)
{
  struct tables128 t;
  __m128i prev = _mm_setzero_si128 ();
  __m128i pending = _mm_setzero_si128 ();

  load128 (&t);
  while (len - i >= 32)
  {
    __m128i a = _mm_loadu_si128 ((const void *) (src + i));
    __m128i b = _mm_loadu_si128 ((const void *) (src + i + 16));
    if (NULL != dst)
    {
      a = _mm_xor_si128 (a, k);
      b = _mm_xor_si128 (b, k);
      _mm_storeu_si128 ((void *) (dst + i), a);
      _mm_storeu_si128 ((void *) (dst + i + 16), b);
    }
    if (0 == _mm_movemask_epi8 (_mm_or_si128 (a, b)))
    {
      /* ASCII: fine unless the last group ended inside a sequence. */
      if (nonzero128 (pending))
        break;
    }
    else
    {
      __m128i e = _mm_or_si128 (errors128 (&t, a, prev), errors128 (&t, b, a));
      if (nonzero128 (e))
        break;
      pending = _mm_subs_epu8 (b, t.incomplete);
    }
    prev = b;
    i += 32;
  }
  return i;
}

__attribute__ ((target ("ssse3"))) size_t
ws_utf8_check_ssse3 (int *step, const unsigned char *s, size_t len)
{
  bool done;
  size_t start;
  size_t j;

  if (0 == len)
    return 0; /* s may be NULL then */
  start = finish_carried (step, NULL, s, len, NULL, 0, &done);
  if (done)
    return start;
  j = resume_point (s, start,
                    loop128 (NULL, s, start, len, _mm_setzero_si128 ()));
  return j + ws_utf8_check_portable (step, s + j, len - j);
}

__attribute__ ((target ("ssse3"))) size_t
ws_utf8_unmask_check_ssse3 (int *step, unsigned char *dst,
                            const unsigned char *src, size_t len,
                            const uint8_t key[4], uint64_t offset)
{
  bool done;
  size_t start;
  size_t j;

  if (0 == len)
    return 0; /* the buffers may be NULL then */
  if (NULL == key)
    key = zero_key;
  start = finish_carried (step, dst, src, len, key, offset, &done);
  if (done)
    return start;
  j = resume_point (
    dst, start,
    loop128 (dst, src, start, len,
             _mm_set1_epi32 ((int) ws_mask_word (key, offset + start))));
  return j
         + ws_utf8_unmask_check_portable (step, dst + j, src + j, len - j, key,
                                          offset + j);
}

/* ------------------------------------------------------------- AVX2 */

struct tables256
{
  __m256i first_high;
  __m256i first_low;
  __m256i second_high;
  __m256i nibble;
  __m256i third_min;
  __m256i fourth_min;
  __m256i top_bit;
  __m256i incomplete;
};

__attribute__ ((target ("avx2"))) static inline void
load256 (struct tables256 *t)
{
  t->first_high =
    _mm256_broadcastsi128_si256 (_mm_loadu_si128 ((const void *) first_high));
  t->first_low =
    _mm256_broadcastsi128_si256 (_mm_loadu_si128 ((const void *) first_low));
  t->second_high =
    _mm256_broadcastsi128_si256 (_mm_loadu_si128 ((const void *) second_high));
  t->nibble = _mm256_set1_epi8 (0x0F);
  t->third_min = _mm256_set1_epi8 ((char) (0xE0 - 0x80));
  t->fourth_min = _mm256_set1_epi8 ((char) (0xF0 - 0x80));
  t->top_bit = _mm256_set1_epi8 ((char) 0x80);
  t->incomplete = _mm256_loadu_si256 ((const void *) incomplete_max);
}

/** The error bits of block @a cur, @a prev being the 32 bytes before. */
__attribute__ ((target ("avx2"))) static inline __m256i
errors256 (const struct tables256 *t, __m256i cur, __m256i prev)
{
  /* The 16 bytes before each lane of cur: prev's high lane, cur's low. */
  __m256i before = _mm256_permute2x128_si256 (prev, cur, 0x21);
  __m256i p1 = _mm256_alignr_epi8 (cur, before, 15);
  __m256i p2 = _mm256_alignr_epi8 (cur, before, 14);
  __m256i p3 = _mm256_alignr_epi8 (cur, before, 13);
  __m256i fh = _mm256_shuffle_epi8 (
    t->first_high, _mm256_and_si256 (_mm256_srli_epi16 (p1, 4), t->nibble));
  __m256i fl =
    _mm256_shuffle_epi8 (t->first_low, _mm256_and_si256 (p1, t->nibble));
  __m256i sh = _mm256_shuffle_epi8 (
    t->second_high, _mm256_and_si256 (_mm256_srli_epi16 (cur, 4), t->nibble));
  __m256i pair = _mm256_and_si256 (_mm256_and_si256 (fh, fl), sh);
  __m256i must =
    _mm256_and_si256 (_mm256_or_si256 (_mm256_subs_epu8 (p2, t->third_min),
                                       _mm256_subs_epu8 (p3, t->fourth_min)),
                      t->top_bit);
  return _mm256_xor_si256 (pair, must);
}

/** As loop128(), over 64-byte groups. */
__attribute__ ((target ("avx2"))) static inline size_t
loop256 (unsigned char *dst, const unsigned char *src, size_t i, size_t len,
         __m256i k)
{
  struct tables256 t;
  __m256i prev = _mm256_setzero_si256 ();
  __m256i pending = _mm256_setzero_si256 ();

  load256 (&t);
  while (len - i >= 64)
  {
    __m256i a = _mm256_loadu_si256 ((const void *) (src + i));
    __m256i b = _mm256_loadu_si256 ((const void *) (src + i + 32));
    if (NULL != dst)
    {
      a = _mm256_xor_si256 (a, k);
      b = _mm256_xor_si256 (b, k);
      _mm256_storeu_si256 ((void *) (dst + i), a);
      _mm256_storeu_si256 ((void *) (dst + i + 32), b);
    }
    if (0 == _mm256_movemask_epi8 (_mm256_or_si256 (a, b)))
    {
      if (! _mm256_testz_si256 (pending, pending))
        break;
    }
    else
    {
      __m256i e =
        _mm256_or_si256 (errors256 (&t, a, prev), errors256 (&t, b, a));
      if (! _mm256_testz_si256 (e, e))
        break;
      pending = _mm256_subs_epu8 (b, t.incomplete);
    }
    prev = b;
    i += 64;
  }
  return i;
}

__attribute__ ((target ("avx2"))) size_t
ws_utf8_check_avx2 (int *step, const unsigned char *s, size_t len)
{
  bool done;
  size_t start;
  size_t j;

  if (0 == len)
    return 0; /* s may be NULL then */
  start = finish_carried (step, NULL, s, len, NULL, 0, &done);
  if (done)
    return start;
  j = resume_point (s, start,
                    loop256 (NULL, s, start, len, _mm256_setzero_si256 ()));
  return j + ws_utf8_check_portable (step, s + j, len - j);
}

__attribute__ ((target ("avx2"))) size_t
ws_utf8_unmask_check_avx2 (int *step, unsigned char *dst,
                           const unsigned char *src, size_t len,
                           const uint8_t key[4], uint64_t offset)
{
  bool done;
  size_t start;
  size_t j;

  if (0 == len)
    return 0; /* the buffers may be NULL then */
  if (NULL == key)
    key = zero_key;
  start = finish_carried (step, dst, src, len, key, offset, &done);
  if (done)
    return start;
  j = resume_point (
    dst, start,
    loop256 (dst, src, start, len,
             _mm256_set1_epi32 ((int) ws_mask_word (key, offset + start))));
  return j
         + ws_utf8_unmask_check_portable (step, dst + j, src + j, len - j, key,
                                          offset + j);
}

#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int ws_utf8_x86_unused;
#endif
