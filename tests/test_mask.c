/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_mask.c
 * @brief Unit tests of variant_mask (RFC 6455 section 5.3 masking),
 *        compared against a plain byte loop.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include "tu_variants.h"
#include "mask.h"
#include "testutil.h"

/* Guard bytes on each side of every destination, to catch stray writes
   from word-wide or vector code. */
#define GUARD 64
#define GUARD_BYTE 0xA5
/* The largest length tested. */
#define BIG (1024 * 1024 + 3)

/* ck_assert_msg records a mark point (a write to Check's pipe) on every
   success, far too slow for millions of checks: only fail through Check. */
#define EXPECT(cond, ...)                                                      \
  do                                                                           \
  {                                                                            \
    if (! (cond))                                                              \
      ck_abort_msg (__VA_ARGS__);                                              \
  } while (0)

/* The first three keys have four different bytes, so that a byte-order
   or rotation mistake shows; the last two are the degenerate ones. */
static const uint8_t keys[][4] = {
  { 0x01, 0x02, 0x04, 0x08 }, { 0x37, 0xfa, 0x21, 0x3d },
  { 0xff, 0x00, 0x80, 0x7f }, { 0x00, 0x00, 0x00, 0x00 },
  { 0xff, 0xff, 0xff, 0xff },
};
#define NKEYS (sizeof (keys) / sizeof (keys[0]))

/* ------------------------------------------------------------ variants */

/* Every test runs once per variant (tests/tu_variants.h). */

static void
variant_mask (void *dst, const void *src, size_t len, const uint8_t key[4],
              uint64_t offset)
{
  variant->mask (dst, src, len, key, offset);
}

static uint32_t rng_state;

static uint32_t
rnd (void)
{
  /* xorshift32: deterministic, so that failures reproduce */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

static void
fill_random (unsigned char *p, size_t len, uint32_t seed)
{
  size_t i;
  rng_state = seed | 1;
  for (i = 0; i < len; i++)
    p[i] = (unsigned char) rnd ();
}

/* The obviously correct masking loop of RFC 6455 section 5.3:
   j = i MOD 4 counted from the start of the payload. */
static void
naive_mask (unsigned char *dst, const unsigned char *src, size_t len,
            const uint8_t key[4], uint64_t offset)
{
  size_t i;
  for (i = 0; i < len; i++)
    dst[i] = (unsigned char) (src[i] ^ key[(offset + i) % 4]);
}

/* A destination buffer with guards around [dst, dst + len). */
struct guarded
{
  unsigned char *base;
  unsigned char *dst;
  size_t len;
};

static void
guarded_init (struct guarded *g, size_t len, size_t align)
{
  /* One arena reused by every case (allocation per case would dominate
     the run time); 16 extra bytes so that any alignment 0..15 fits. */
  static unsigned char *arena;
  static size_t arena_size;
  size_t need = len + 2 * GUARD + 16;
  if (need > arena_size)
  {
    free (arena);
    arena = malloc (need);
    ck_assert_ptr_nonnull (arena);
    arena_size = need;
  }
  g->base = arena;
  memset (g->base, GUARD_BYTE, need);
  g->dst = g->base + GUARD + align;
  g->len = len;
}

static void
guarded_check (const struct guarded *g, const char *what, size_t len,
               size_t align)
{
  const unsigned char *p;
  size_t total = g->len + 2 * GUARD + 16;
  for (p = g->base; p < g->dst; p++)
    EXPECT (GUARD_BYTE == *p,
            "%s: byte %td before dst overwritten (len %zu, align %zu)", what,
            g->dst - p, len, align);
  for (p = g->dst + g->len; p < g->base + total; p++)
    EXPECT (GUARD_BYTE == *p,
            "%s: byte %td after dst end overwritten (len %zu, "
            "align %zu)",
            what, p - (g->dst + g->len), len, align);
}

static void
guarded_free (struct guarded *g)
{
  /* the arena stays for the next case */
  g->base = NULL;
  g->dst = NULL;
}

/* Compares ws_mask_copy with the naive loop for one case; dst gets the
   guards, src is left untouched. */
static void
check_one (const unsigned char *src, size_t len, size_t dst_align,
           const uint8_t key[4], uint64_t offset, unsigned char *expect,
           unsigned char *src_copy)
{
  struct guarded g;
  size_t i;

  naive_mask (expect, src, len, key, offset);
  memcpy (src_copy, src, len);
  guarded_init (&g, len, dst_align);
  variant_mask (g.dst, src, len, key, offset);
  for (i = 0; i < len && g.dst[i] == expect[i]; i++)
    ;
  EXPECT (i == len,
          "byte %zu of %zu: 0x%02x instead of 0x%02x (offset "
          "%llu, dst align %zu, key %02x%02x%02x%02x)",
          i, len, g.dst[i], expect[i], (unsigned long long) offset, dst_align,
          key[0], key[1], key[2], key[3]);
  guarded_check (&g, "copy", len, dst_align);
  EXPECT (0 == memcmp (src, src_copy, len),
          "source modified (len %zu, offset %llu)", len,
          (unsigned long long) offset);
  guarded_free (&g);
}


START_TEST (test_mask_matches_byte_loop_lengths_0_to_300_all_alignments)
{
  tu_use_variant (_i);
  /* Every length 0..300 with every src and dst alignment 0..15 and every
     offset 0..7: covers the head/tail handling around word boundaries. */
  unsigned char *srcbuf = malloc (300 + 16);
  unsigned char expect[300];
  unsigned char copy[300];
  size_t len;
  size_t sa;
  size_t da;
  unsigned off;

  ck_assert_ptr_nonnull (srcbuf);
  fill_random (srcbuf, 300 + 16, 0x1234);
  for (len = 0; len <= 300; len++)
    for (off = 0; off < 8; off++)
      for (sa = 0; sa < 16; sa++)
        for (da = 0; da < 16; da++)
          check_one (srcbuf + sa, len, da, keys[(len + off) % NKEYS], off,
                     expect, copy);
  free (srcbuf);
}
END_TEST


START_TEST (test_mask_matches_byte_loop_every_key)
{
  tu_use_variant (_i);
  /* Each key with each offset: a key byte used at the wrong position
     shows with the asymmetric keys. */
  unsigned char srcbuf[200 + 16];
  unsigned char expect[200];
  unsigned char copy[200];
  size_t k;
  unsigned off;
  size_t len;

  fill_random (srcbuf, sizeof (srcbuf), 0x777);
  for (k = 0; k < NKEYS; k++)
    for (off = 0; off < 8; off++)
      for (len = 0; len <= 200; len += 1 + len / 8)
        check_one (srcbuf + (len % 16), len, (off * 3) % 16, keys[k], off,
                   expect, copy);
}
END_TEST


START_TEST (test_mask_matches_byte_loop_large_lengths)
{
  tu_use_variant (_i);
  static const size_t lens[] = { 4096, 65537, BIG };
  unsigned char *srcbuf = malloc (BIG + 16);
  unsigned char *expect = malloc (BIG);
  unsigned char *copy = malloc (BIG);
  size_t i;
  unsigned off;

  ck_assert_ptr_nonnull (srcbuf);
  ck_assert_ptr_nonnull (expect);
  ck_assert_ptr_nonnull (copy);
  fill_random (srcbuf, BIG + 16, 0xBEEF);
  for (i = 0; i < sizeof (lens) / sizeof (lens[0]); i++)
    for (off = 0; off < 4; off++)
    {
      /* aligned, and both misaligned differently */
      check_one (srcbuf, lens[i], 0, keys[1], off, expect, copy);
      check_one (srcbuf + 3, lens[i], 13, keys[2], off, expect, copy);
      check_one (srcbuf + 7 + off, lens[i], 1 + off, keys[0], off, expect,
                 copy);
    }
  free (srcbuf);
  free (expect);
  free (copy);
}
END_TEST


START_TEST (test_mask_only_offset_mod_4_matters)
{
  tu_use_variant (_i);
  /* Offsets beyond 32 bits must not be truncated or overflow: each is
     compared with the result for offset % 4. */
  static const uint64_t offsets[] = {
    4,
    5,
    7,
    0x100000000ULL,
    0x100000001ULL,
    0x100000003ULL,
    0x7FFFFFFFFFFFFFFEULL,
    0x8000000000000001ULL,
    0xFFFFFFFFFFFFFFFDULL,
    0xFFFFFFFFFFFFFFFFULL,
  };
  unsigned char src[100 + 16];
  unsigned char want[100];
  struct guarded g;
  size_t i;
  size_t len;

  fill_random (src, sizeof (src), 0x4242);
  for (i = 0; i < sizeof (offsets) / sizeof (offsets[0]); i++)
    for (len = 0; len <= 100; len += 7)
    {
      size_t align = (i + len) % 16;
      variant_mask (want, src + align, len, keys[0],
                    (uint64_t) (offsets[i] % 4));
      guarded_init (&g, len, align);
      variant_mask (g.dst, src + align, len, keys[0], offsets[i]);
      EXPECT (0 == memcmp (g.dst, want, len),
              "offset 0x%llx differs from offset %u (len %zu)",
              (unsigned long long) offsets[i], (unsigned) (offsets[i] % 4),
              len);
      guarded_check (&g, "large offset", len, align);
      guarded_free (&g);
      /* and the naive loop agrees too */
      naive_mask (want, src + align, len, keys[0], offsets[i]);
      guarded_init (&g, len, align);
      variant_mask (g.dst, src + align, len, keys[0], offsets[i]);
      EXPECT (0 == memcmp (g.dst, want, len),
              "offset 0x%llx differs from the byte loop (len %zu)",
              (unsigned long long) offsets[i], len);
      guarded_free (&g);
    }
}
END_TEST


START_TEST (test_mask_in_place_matches_byte_loop)
{
  tu_use_variant (_i);
  /* dst == src is allowed: every length 0..300, alignment and offset. */
  unsigned char orig[300 + 16];
  unsigned char expect[300];
  struct guarded g;
  size_t len;
  size_t a;
  unsigned off;
  size_t i;

  fill_random (orig, sizeof (orig), 0xCAFE);
  for (len = 0; len <= 300; len++)
    for (a = 0; a < 16; a++)
      for (off = 0; off < 8; off++)
      {
        naive_mask (expect, orig + a, len, keys[1], off);
        guarded_init (&g, len, a);
        memcpy (g.dst, orig + a, len);
        variant_mask (g.dst, g.dst, len, keys[1], off);
        for (i = 0; i < len && g.dst[i] == expect[i]; i++)
          ;
        EXPECT (i == len,
                "in place byte %zu of %zu wrong (align %zu, offset %u)", i, len,
                a, off);
        guarded_check (&g, "in place", len, a);
        guarded_free (&g);
      }
}
END_TEST


START_TEST (test_mask_in_place_large)
{
  tu_use_variant (_i);
  unsigned char *orig = malloc (BIG + 16);
  unsigned char *expect = malloc (BIG);
  struct guarded g;
  unsigned a;

  ck_assert_ptr_nonnull (orig);
  ck_assert_ptr_nonnull (expect);
  fill_random (orig, BIG + 16, 0xF00D);
  for (a = 0; a < 4; a++)
  {
    naive_mask (expect, orig + a, BIG, keys[2], a + 1);
    guarded_init (&g, BIG, a * 5);
    memcpy (g.dst, orig + a, BIG);
    variant_mask (g.dst, g.dst, BIG, keys[2], a + 1);
    EXPECT (0 == memcmp (g.dst, expect, BIG),
            "in place, %d bytes, align %u: differs from byte loop", BIG, a * 5);
    guarded_check (&g, "in place large", BIG, a * 5);
    guarded_free (&g);
  }
  free (orig);
  free (expect);
}
END_TEST


START_TEST (test_mask_twice_restores_input)
{
  tu_use_variant (_i);
  /* Masking is its own inverse, also when the second pass is done in two
     pieces split at every offset (the second piece continuing with offset
     + split), as when a payload arrives in pieces. */
  unsigned char orig[260 + 16];
  unsigned char masked[260];
  unsigned char back[260];
  size_t len;
  size_t cut;
  unsigned off;

  fill_random (orig, sizeof (orig), 0xD00D);
  for (len = 0; len <= 260; len += 13)
    for (off = 0; off < 4; off++)
    {
      variant_mask (masked, orig + (len % 16), len, keys[1], off);
      for (cut = 0; cut <= len; cut++)
      {
        memset (back, 0, sizeof (back));
        variant_mask (back, masked, cut, keys[1], off);
        variant_mask (back + cut, masked + cut, len - cut, keys[1],
                      (uint64_t) off + cut);
        EXPECT (0 == memcmp (back, orig + (len % 16), len),
                "unmasking %zu bytes in pieces cut at %zu (offset %u) "
                "did not restore the input",
                len, cut, off);
      }
    }
}
END_TEST


START_TEST (test_mask_in_pieces_equals_whole)
{
  tu_use_variant (_i);
  /* A payload masked in two pieces (offset continued) equals the payload
     masked at once, for every cut and every start offset. */
  unsigned char src[300 + 16];
  unsigned char whole[300];
  unsigned char parts[300];
  size_t cut;
  unsigned off;
  const size_t len = 300;

  fill_random (src, sizeof (src), 0xABCD);
  for (off = 0; off < 8; off++)
  {
    variant_mask (whole, src + 1, len, keys[0], off);
    for (cut = 0; cut <= len; cut++)
    {
      variant_mask (parts, src + 1, cut, keys[0], off);
      variant_mask (parts + cut, src + 1 + cut, len - cut, keys[0],
                    (uint64_t) off + cut);
      EXPECT (0 == memcmp (whole, parts, len),
              "cut at %zu, offset %u: pieces differ from whole", cut, off);
    }
  }
}
END_TEST


START_TEST (test_mask_zero_length_touches_nothing)
{
  tu_use_variant (_i);
  /* len 0: no byte of dst (or around it) may change, whatever the
     pointers' alignment. */
  struct guarded g;
  unsigned char src[16];
  size_t a;
  unsigned off;

  memset (src, 0x3C, sizeof (src));
  for (a = 0; a < 16; a++)
    for (off = 0; off < 8; off++)
    {
      guarded_init (&g, 0, a);
      variant_mask (g.dst, src + a % 8, 0, keys[4], off);
      guarded_check (&g, "zero length", 0, a);
      guarded_free (&g);
    }
}
END_TEST


START_TEST (test_mask_zero_key_is_plain_copy)
{
  tu_use_variant (_i);
  unsigned char src[300 + 16];
  struct guarded g;
  size_t len;

  fill_random (src, sizeof (src), 0x5150);
  for (len = 0; len <= 300; len++)
  {
    guarded_init (&g, len, len % 16);
    variant_mask (g.dst, src + (len * 7) % 16, len, keys[3], len);
    EXPECT (0 == memcmp (g.dst, src + (len * 7) % 16, len),
            "zero key changed the data (len %zu)", len);
    guarded_check (&g, "zero key", len, len % 16);
    guarded_free (&g);
  }
}
END_TEST


START_TEST (test_mask_touches_nothing_outside_src_and_dst)
{
  tu_use_variant (_i);
  /* src and dst each flush against a fence, at their start or their end:
     no read before src or past src + len, no write outside dst. */
  struct tu_fence fs;
  struct tu_fence fd;
  unsigned char orig[300];
  unsigned char expect[300];
  size_t len;
  unsigned off;
  int se;
  int de;
  size_t i;

  tu_fence_init (&fs, sizeof (orig));
  tu_fence_init (&fd, sizeof (orig));
  fill_random (orig, sizeof (orig), 0xFE7CE);
  for (len = 0; len <= sizeof (orig); len++)
    for (off = 0; off < 4; off++)
      for (se = 0; se < 2; se++)
        for (de = 0; de < 2; de++)
        {
          unsigned char *src = tu_fence_place (&fs, len, se);
          unsigned char *dst = tu_fence_place (&fd, len, de);
          memcpy (src, orig, len);
          naive_mask (expect, orig, len, keys[1], off);
          variant_mask (dst, src, len, keys[1], off);
          for (i = 0; i < len && dst[i] == expect[i]; i++)
            ;
          EXPECT (i == len, "fenced copy, len %zu offset %u: byte %zu wrong",
                  len, off, i);
          /* and in place, flush against the fence */
          variant_mask (src, src, len, keys[1], off);
          EXPECT (0 == memcmp (src, expect, len),
                  "fenced in place, len %zu offset %u: wrong", len, off);
        }
  tu_fence_free (&fs);
  tu_fence_free (&fd);
}
END_TEST

START_TEST (test_mask_variant_list_matches_build_and_cpu)
{
  /* The portable variant comes first and is always there; the SIMD ones
     exactly when the build has them and the CPU runs them; the entry
     point uses the last (best) one. */
  const struct ws_simd_impl *list;
  size_t n = ws_simd_impls (&list);
  size_t want = 1;
  unsigned f = ws_cpu_features ();

  tu_use_variant (_i);
  ck_assert_str_eq (list[0].name, "portable");
  ck_assert_uint_eq (list[0].needs, 0);
#ifdef WS_SIMD_X86
  if (0 != (f & WS_CPU_SSSE3))
    want++;
  if (0 != (f & WS_CPU_AVX2))
    want++;
#else
  ck_assert_uint_eq (f, 0);
#endif
  ck_assert_uint_eq (n, want);
  ck_assert_ptr_eq (ws_simd_best (), &list[n - 1]);
}
END_TEST


START_TEST (test_mask_variant_every_dst_alignment_to_64)
{
  /* Vector stores are aligned after a byte-wise head: every head length
     (dst alignment 0..63), source misaligned against it, lengths
     0..330, every phase; guards catch a store outside dst. */
  unsigned char *srcbuf = malloc (330 + 8);
  unsigned char expect[330];
  struct guarded g;
  size_t len;
  size_t da;
  unsigned off;

  tu_use_variant (_i);
  ck_assert_ptr_nonnull (srcbuf);
  fill_random (srcbuf, 330 + 8, 0x5151);
  for (len = 0; len <= 330; len++)
    for (da = 0; da < 64; da++)
      for (off = 0; off < 4; off++)
      {
        const unsigned char *src = srcbuf + ((da + off) & 7);
        const uint8_t *key = keys[(len + da) % 3];
        /* the arena's own alignment is 16: add the rest by hand */
        guarded_init (&g, len + 128, 0);
        g.dst += (size_t) (-(uintptr_t) g.dst & 63) + da;
        g.len = len;
        naive_mask (expect, src, len, key, off);
        variant_mask (g.dst, src, len, key, off);
        EXPECT (0 == memcmp (g.dst, expect, len),
                "%s: len %zu dst align %zu offset %u: wrong bytes",
                variant->name, len, da, off);
        /* the guard area starts right after dst: nothing between */
        {
          const unsigned char *p;
          for (p = g.dst + len; p < g.dst + len + GUARD / 2; p++)
            EXPECT (GUARD_BYTE == *p,
                    "%s: len %zu dst align %zu: wrote past end", variant->name,
                    len, da);
          for (p = g.dst - 1; p >= g.base; p--)
            EXPECT (GUARD_BYTE == *p,
                    "%s: len %zu dst align %zu: wrote before dst",
                    variant->name, len, da);
        }
        guarded_free (&g);
      }
  free (srcbuf);
}
END_TEST


static Suite *
mask_suite (void)
{
  Suite *s = suite_create ("mask");
  TCase *tc = tcase_create ("mask");
  int n_variants = tu_count_variants ();

  /* generous for slow sanitizer builds; a normal build takes well under
     a second per test */
  tcase_set_timeout (tc, 60);
  tcase_add_loop_test (
    tc, test_mask_matches_byte_loop_lengths_0_to_300_all_alignments, 0,
    n_variants);
  tcase_add_loop_test (tc, test_mask_matches_byte_loop_every_key, 0,
                       n_variants);
  tcase_add_loop_test (tc, test_mask_matches_byte_loop_large_lengths, 0,
                       n_variants);
  tcase_add_loop_test (tc, test_mask_only_offset_mod_4_matters, 0, n_variants);
  tcase_add_loop_test (tc, test_mask_in_place_matches_byte_loop, 0, n_variants);
  tcase_add_loop_test (tc, test_mask_in_place_large, 0, n_variants);
  tcase_add_loop_test (tc, test_mask_twice_restores_input, 0, n_variants);
  tcase_add_loop_test (tc, test_mask_in_pieces_equals_whole, 0, n_variants);
  tcase_add_loop_test (tc, test_mask_zero_length_touches_nothing, 0,
                       n_variants);
  tcase_add_loop_test (tc, test_mask_zero_key_is_plain_copy, 0, n_variants);
  tcase_add_loop_test (tc, test_mask_touches_nothing_outside_src_and_dst, 0,
                       n_variants);
  tcase_add_loop_test (tc, test_mask_variant_list_matches_build_and_cpu, 0,
                       n_variants);
  tcase_add_loop_test (tc, test_mask_variant_every_dst_alignment_to_64, 0,
                       n_variants);
  suite_add_tcase (s, tc);
  return s;
}


int
main (void)
{
  SRunner *sr = srunner_create (mask_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (failed > 0) ? EXIT_FAILURE : EXIT_SUCCESS;
}
