/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_utf8.c
 * @brief Unit tests of the incremental UTF-8 validator (src/utf8.h),
 *        compared against a small reference decoder written from the
 *        RFC 3629 code point rules.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include "microhttpd_ws.h"
#include "tu_variants.h"
#include "utf8.h"
#include "testutil.h"

/* ck_assert_msg records a mark point (a write to Check's pipe) on every
   success, far too slow for millions of checks: only fail through Check. */
#define EXPECT(cond, ...)                                                      \
  do                                                                           \
  {                                                                            \
    if (! (cond))                                                              \
      ck_abort_msg (__VA_ARGS__);                                              \
  } while (0)

#define S_NORMAL MHD_WEBSOCKET_UTF8STEP_NORMAL
#define S_2_1 MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1
#define S_3E0 MHD_WEBSOCKET_UTF8STEP_UTF3TAIL1_1OF2
#define S_3ED MHD_WEBSOCKET_UTF8STEP_UTF3TAIL2_1OF2
#define S_3_1 MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2
#define S_3_2 MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2
#define S_4F0 MHD_WEBSOCKET_UTF8STEP_UTF4TAIL1_1OF3
#define S_4F4 MHD_WEBSOCKET_UTF8STEP_UTF4TAIL2_1OF3
#define S_4_1 MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_1OF3
#define S_4_2 MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3
#define S_4_3 MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3
#define NSTATES 11


/* ------------------------------------------------------------ variants */

/* Every test runs once per variant (tests/tu_variants.h). */

static size_t
variant_check (int *step, const unsigned char *s, size_t len)
{
  return variant->utf8_check (step, s, len);
}

/* ------------------------------------------------------------ reference */

/* The code points an n-byte sequence may encode (RFC 3629 section 3):
   shorter forms are overlong, above U+10FFFF does not exist. */
static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
static const uint32_t max_cp[5] = { 0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF };

/* The contract's step for "k bytes of an n-byte sequence seen". */
static int
ref_state (int n, int k, unsigned lead)
{
  if (0 == k)
    return S_NORMAL;
  if (2 == n)
    return S_2_1;
  if (3 == n)
  {
    if (2 == k)
      return S_3_2;
    if (0xE0 == lead)
      return S_3E0;
    if (0xED == lead)
      return S_3ED;
    return S_3_1;
  }
  if (3 == k)
    return S_4_3;
  if (2 == k)
    return S_4_2;
  if (0xF0 == lead)
    return S_4F0;
  if (0xF4 == lead)
    return S_4F4;
  return S_4_1;
}

/**
 * Decodes code points one byte at a time.  A byte is the first invalid
 * one when, with it, no completion of the current sequence can encode an
 * allowed code point: the range of code points the bits seen so far still
 * allow is checked against the length's range and the surrogates.
 *
 * @return @a len, or the index of the first invalid byte; @a *state is
 *         the step after the last good byte
 */
static size_t
ref_check (const unsigned char *s, size_t len, int *state)
{
  int n = 0;
  int k = 0;
  unsigned lead = 0;
  uint32_t cp = 0;
  size_t i;

  for (i = 0; i < len; i++)
  {
    unsigned b = s[i];
    uint32_t lo;
    uint32_t hi;
    int nn = n;
    int nk = k;
    uint32_t ncp = cp;

    if (0 == k)
    {
      if (b < 0x80)
        continue;
      if (b >= 0xC0 && b < 0xE0)
      {
        nn = 2;
        ncp = b & 0x1F;
      }
      else if (b >= 0xE0 && b < 0xF0)
      {
        nn = 3;
        ncp = b & 0x0F;
      }
      else if (b >= 0xF0 && b < 0xF8)
      {
        nn = 4;
        ncp = b & 0x07;
      }
      else
        break; /* a stray continuation byte, or F8..FF */
      nk = 1;
    }
    else
    {
      if (0x80 != (b & 0xC0))
        break;
      ncp = (cp << 6) | (b & 0x3F);
      nk = k + 1;
    }
    lo = ncp << (6 * (nn - nk));
    hi = lo | ((1u << (6 * (nn - nk))) - 1);
    if (hi < min_cp[nn] || lo > max_cp[nn] || (lo >= 0xD800 && hi <= 0xDFFF))
      break;
    if (1 == nk)
      lead = b;
    n = nn;
    k = (nk == nn) ? 0 : nk;
    cp = ncp;
  }
  *state = ref_state (n, k, lead);
  return i;
}


/* ------------------------------------------------------------ helpers */

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
seed (uint32_t s)
{
  rng_state = s | 1;
}

/* Appends the UTF-8 form of @a cp to @a out; returns the byte count. */
static size_t
encode_cp (unsigned char *out, uint32_t cp)
{
  if (cp < 0x80)
  {
    out[0] = (unsigned char) cp;
    return 1;
  }
  if (cp < 0x800)
  {
    out[0] = (unsigned char) (0xC0 | (cp >> 6));
    out[1] = (unsigned char) (0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000)
  {
    out[0] = (unsigned char) (0xE0 | (cp >> 12));
    out[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
    out[2] = (unsigned char) (0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (unsigned char) (0xF0 | (cp >> 18));
  out[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
  out[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
  out[3] = (unsigned char) (0x80 | (cp & 0x3F));
  return 4;
}

/* A random allowed code point; mostly ASCII so that word-wide ASCII
   paths are entered and left often. */
static uint32_t
random_cp (void)
{
  uint32_t r = rnd ();
  switch (r % 8)
  {
  case 0:
    return 0x80 + (rnd () % (0x800 - 0x80));
  case 1:
  {
    uint32_t cp = 0x800 + (rnd () % (0x10000 - 0x800 - 0x800));
    return (cp >= 0xD800) ? cp + 0x800 : cp; /* skip the surrogates */
  }
  case 2:
    return 0x10000 + (rnd () % (0x110000 - 0x10000));
  default:
    return rnd () % 0x80;
  }
}

/* Fills exactly @a len bytes with valid UTF-8 (ASCII pads the end). */
static void
random_text (unsigned char *out, size_t len)
{
  size_t n = 0;
  while (n < len)
  {
    unsigned char tmp[4];
    size_t l = encode_cp (tmp, random_cp ());
    if (l > len - n)
    {
      out[n++] = 'a';
      continue;
    }
    memcpy (out + n, tmp, l);
    n += l;
  }
}

static const char *
state_name (int st)
{
  static const char *names[NSTATES] = {
    "NORMAL",        "UTF2TAIL_1OF1", "UTF3TAIL1_1OF2", "UTF3TAIL2_1OF2",
    "UTF3TAIL_1OF2", "UTF3TAIL_2OF2", "UTF4TAIL1_1OF3", "UTF4TAIL2_1OF3",
    "UTF4TAIL_1OF3", "UTF4TAIL_2OF3", "UTF4TAIL_3OF3",
  };
  if (st < 0 || st >= NSTATES)
    return "(not a step)";
  return names[st];
}

/* Hex dump of up to 16 bytes around @a at, for failure messages. */
static const char *
hex (const unsigned char *s, size_t len, size_t at)
{
  static char buf[128];
  size_t from = (at > 8) ? at - 8 : 0;
  size_t i;
  size_t o = 0;
  for (i = from; i < len && i < from + 16 && o + 4 < sizeof (buf); i++)
    o +=
      (size_t) snprintf (buf + o, sizeof (buf) - o, "%02x ", (unsigned) s[i]);
  buf[o] = '\0';
  return buf;
}

/* Runs the library and the reference from NORMAL on one text and asserts
   the same index and state. */
static void
compare (const unsigned char *s, size_t len, const char *what, size_t tag)
{
  int lstep = S_NORMAL;
  int rstep;
  size_t lr = variant_check (&lstep, s, len);
  size_t rr = ref_check (s, len, &rstep);
  EXPECT (lr == rr && lstep == rstep,
          "%s %zu (len %zu): library says %zu/%s, reference %zu/%s; "
          "bytes from %zu: %s",
          what, tag, len, lr, state_name (lstep), rr, state_name (rstep),
          (rr > 8) ? rr - 8 : 0, hex (s, len, rr));
}

/* The same for a text that is at most 4 bytes (exhaustive loops). */
static void
compare_short (const unsigned char *s, size_t len)
{
  int lstep = S_NORMAL;
  int rstep;
  size_t lr = variant_check (&lstep, s, len);
  size_t rr = ref_check (s, len, &rstep);
  if (lr != rr || lstep != rstep)
    ck_abort_msg ("bytes %s: library says %zu/%s, reference %zu/%s",
                  hex (s, len, 0), lr, state_name (lstep), rr,
                  state_name (rstep));
}

/* Library result from a given state, for one expected outcome. */
static void
expect_from (int from, const char *bytes, size_t len, size_t want_ret,
             int want_step)
{
  int step = from;
  size_t r = variant_check (&step, (const unsigned char *) bytes, len);
  ck_assert_msg (r == want_ret && step == want_step,
                 "from %s, bytes %s: got %zu/%s, expected %zu/%s",
                 state_name (from), hex ((const unsigned char *) bytes, len, 0),
                 r, state_name (step), want_ret, state_name (want_step));
}

/* Asserts library and reference both give the hard-coded outcome. */
static void
expect_vector (const char *bytes, size_t len, size_t want_ret, int want_step)
{
  int rstep;
  size_t rr = ref_check ((const unsigned char *) bytes, len, &rstep);
  /* a wrong reference would make the comparisons meaningless */
  ck_assert_msg (rr == want_ret && rstep == want_step,
                 "reference validator broken on %s",
                 hex ((const unsigned char *) bytes, len, 0));
  expect_from (S_NORMAL, bytes, len, want_ret, want_step);
}

#define VEC(lit, ret, st) expect_vector (lit, sizeof (lit) - 1, ret, st)


/* ------------------------------------------------------------ exhaustive */

START_TEST (test_utf8_every_one_byte_sequence)
{
  tu_use_variant (_i);
  unsigned b;
  for (b = 0; b < 256; b++)
  {
    unsigned char s[1];
    s[0] = (unsigned char) b;
    compare_short (s, 1);
  }
}
END_TEST


START_TEST (test_utf8_every_two_byte_sequence)
{
  tu_use_variant (_i);
  unsigned a;
  unsigned b;
  for (a = 0; a < 256; a++)
    for (b = 0; b < 256; b++)
    {
      unsigned char s[2];
      s[0] = (unsigned char) a;
      s[1] = (unsigned char) b;
      compare_short (s, 2);
    }
}
END_TEST


START_TEST (test_utf8_every_three_byte_sequence)
{
  tu_use_variant (_i);
  unsigned a;
  unsigned b;
  unsigned c;
  for (a = 0; a < 256; a++)
    for (b = 0; b < 256; b++)
      for (c = 0; c < 256; c++)
      {
        unsigned char s[3];
        s[0] = (unsigned char) a;
        s[1] = (unsigned char) b;
        s[2] = (unsigned char) c;
        compare_short (s, 3);
      }
}
END_TEST


START_TEST (test_utf8_four_byte_sequences_every_lead_second_third)
{
  tu_use_variant (_i);
  /* Leads F0..FF with every second and third byte; the fourth byte from
     a set covering every class boundary plus a random one. */
  static const unsigned char fourth[] = { 0x00, 0x41, 0x7F, 0x80, 0x81, 0x8F,
                                          0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2,
                                          0xE0, 0xF0, 0xF4, 0xFF };
  unsigned a;
  unsigned b;
  unsigned c;
  size_t d;
  seed (0x4444);
  for (a = 0xF0; a < 256; a++)
    for (b = 0; b < 256; b++)
      for (c = 0; c < 256; c++)
      {
        unsigned char s[4];
        s[0] = (unsigned char) a;
        s[1] = (unsigned char) b;
        s[2] = (unsigned char) c;
        for (d = 0; d <= sizeof (fourth); d++)
        {
          s[3] = (d < sizeof (fourth)) ? fourth[d] : (unsigned char) rnd ();
          compare_short (s, 4);
        }
      }
}
END_TEST


START_TEST (test_utf8_every_valid_code_point_accepted)
{
  tu_use_variant (_i);
  /* Every scalar value encodes to text the validator takes whole, ending
     in NORMAL, after every possible pending prefix was completed. */
  uint32_t cp;
  for (cp = 0; cp <= 0x10FFFF; cp++)
  {
    unsigned char s[4];
    size_t l;
    int step = S_NORMAL;
    if (0xD800 == cp)
      cp = 0xE000;
    l = encode_cp (s, cp);
    EXPECT (l == variant_check (&step, s, l) && S_NORMAL == step,
            "U+%04lX (%s) not accepted", (unsigned long) cp, hex (s, l, 0));
  }
}
END_TEST


/* ------------------------------------------------------------ states */

START_TEST (test_utf8_state_after_each_lead_byte)
{
  tu_use_variant (_i);
  /* The step names of the contract, written out rather than taken from
     the reference. */
  unsigned b;
  for (b = 0; b < 0x80; b++)
  {
    char c = (char) b;
    expect_from (S_NORMAL, &c, 1, 1, S_NORMAL);
  }
  for (b = 0xC2; b <= 0xDF; b++)
  {
    char c = (char) b;
    expect_from (S_NORMAL, &c, 1, 1, S_2_1);
  }
  expect_from (S_NORMAL, "\xE0", 1, 1, S_3E0);
  expect_from (S_NORMAL, "\xED", 1, 1, S_3ED);
  for (b = 0xE1; b <= 0xEF; b++)
  {
    char c = (char) b;
    if (0xED != b)
      expect_from (S_NORMAL, &c, 1, 1, S_3_1);
  }
  expect_from (S_NORMAL, "\xF0", 1, 1, S_4F0);
  expect_from (S_NORMAL, "\xF4", 1, 1, S_4F4);
  expect_from (S_NORMAL, "\xF1", 1, 1, S_4_1);
  expect_from (S_NORMAL, "\xF2", 1, 1, S_4_1);
  expect_from (S_NORMAL, "\xF3", 1, 1, S_4_1);
}
END_TEST


START_TEST (test_utf8_state_after_each_tail_byte)
{
  tu_use_variant (_i);
  VEC ("\xE0\xA0", 2, S_3_2);
  VEC ("\xE0\xBF", 2, S_3_2);
  VEC ("\xE1\x80", 2, S_3_2);
  VEC ("\xED\x80", 2, S_3_2);
  VEC ("\xED\x9F", 2, S_3_2);
  VEC ("\xEF\xBF", 2, S_3_2);
  VEC ("\xE0\xA0\x80", 3, S_NORMAL);
  VEC ("\xF0\x90", 2, S_4_2);
  VEC ("\xF1\x80", 2, S_4_2);
  VEC ("\xF3\xBF", 2, S_4_2);
  VEC ("\xF4\x8F", 2, S_4_2);
  VEC ("\xF0\x90\x80", 3, S_4_3);
  VEC ("\xF4\x8F\xBF", 3, S_4_3);
  VEC ("\xF2\x80\x80", 3, S_4_3);
  VEC ("\xF4\x8F\xBF\xBF", 4, S_NORMAL);
  VEC ("\xC2\x80", 2, S_NORMAL);
  VEC ("\xDF\xBF", 2, S_NORMAL);
}
END_TEST


/* The bytes that may follow in each state (RFC 3629 section 4), and the
   state they lead to. */
static int
rule_next (int st, unsigned b)
{
  switch (st)
  {
  case S_NORMAL:
    if (b < 0x80)
      return S_NORMAL;
    if (b >= 0xC2 && b <= 0xDF)
      return S_2_1;
    if (0xE0 == b)
      return S_3E0;
    if (0xED == b)
      return S_3ED;
    if (b >= 0xE1 && b <= 0xEF)
      return S_3_1;
    if (0xF0 == b)
      return S_4F0;
    if (0xF4 == b)
      return S_4F4;
    if (b >= 0xF1 && b <= 0xF3)
      return S_4_1;
    return -1;
  case S_2_1:
  case S_3_2:
  case S_4_3:
    return (b >= 0x80 && b <= 0xBF) ? S_NORMAL : -1;
  case S_3E0:
    return (b >= 0xA0 && b <= 0xBF) ? S_3_2 : -1;
  case S_3ED:
    return (b >= 0x80 && b <= 0x9F) ? S_3_2 : -1;
  case S_3_1:
    return (b >= 0x80 && b <= 0xBF) ? S_3_2 : -1;
  case S_4F0:
    return (b >= 0x90 && b <= 0xBF) ? S_4_2 : -1;
  case S_4F4:
    return (b >= 0x80 && b <= 0x8F) ? S_4_2 : -1;
  case S_4_1:
    return (b >= 0x80 && b <= 0xBF) ? S_4_2 : -1;
  case S_4_2:
    return (b >= 0x80 && b <= 0xBF) ? S_4_3 : -1;
  default:
    return -1;
  }
}


START_TEST (test_utf8_each_state_accepts_exactly_the_allowed_next_bytes)
{
  tu_use_variant (_i);
  /* From every state, every byte: accepted with the right next state, or
     rejected at index 0 with the state left as it was. */
  int st;
  unsigned b;
  for (st = 0; st < NSTATES; st++)
    for (b = 0; b < 256; b++)
    {
      char c = (char) b;
      int next = rule_next (st, b);
      if (next < 0)
        expect_from (st, &c, 1, 0, st);
      else
        expect_from (st, &c, 1, 1, next);
    }
}
END_TEST


START_TEST (test_utf8_each_state_then_every_two_bytes)
{
  tu_use_variant (_i);
  /* A pending state carries into the next call exactly as if its bytes
     had been in the same call: compared with the reference given a
     prefix that leads to that state. */
  static const char *const prefix[NSTATES] = {
    "",     "\xC3", "\xE0", "\xED",     "\xE5",         "\xE5\x80",
    "\xF0", "\xF4", "\xF2", "\xF2\x80", "\xF2\x80\x80",
  };
  int st;
  unsigned a;
  unsigned b;
  for (st = 0; st < NSTATES; st++)
  {
    size_t pl = strlen (prefix[st]);
    unsigned char whole[6];
    int rs;
    memcpy (whole, prefix[st], pl);
    ck_assert_uint_eq (ref_check (whole, pl, &rs), pl);
    ck_assert_int_eq (rs, st);
    for (a = 0; a < 256; a++)
      for (b = 0; b < 256; b++)
      {
        int step = st;
        size_t lr;
        size_t rr;
        whole[pl] = (unsigned char) a;
        whole[pl + 1] = (unsigned char) b;
        lr = variant_check (&step, whole + pl, 2);
        rr = ref_check (whole, pl + 2, &rs);
        EXPECT (lr + pl == rr && step == rs,
                "from %s, bytes %02x %02x: got %zu/%s, expected %zu/%s",
                state_name (st), a, b, lr, state_name (step), rr - pl,
                state_name (rs));
      }
  }
}
END_TEST


START_TEST (test_utf8_empty_input_keeps_state)
{
  tu_use_variant (_i);
  int st;
  for (st = 0; st < NSTATES; st++)
  {
    int step = st;
    ck_assert_uint_eq (variant_check (&step, (const unsigned char *) "x", 0),
                       0);
    ck_assert_int_eq (step, st);
  }
}
END_TEST


START_TEST (test_utf8_error_reports_state_before_bad_byte)
{
  tu_use_variant (_i);
  /* On an error *step is the state before the offending byte, so that a
     caller can tell where the text stood. */
  VEC ("abc\xE1\x80X", 5, S_3_2);
  VEC ("abc\xF1\x80\x80\x7F", 6, S_4_3);
  VEC ("abc\xC3", 4, S_2_1);
  VEC ("abc\xC3\xC3", 4, S_2_1);
  VEC ("abc\xFF", 3, S_NORMAL);
  VEC ("\xE0\x9F", 1, S_3E0);
  VEC ("\xED\xA0", 1, S_3ED);
  VEC ("\xF0\x8F", 1, S_4F0);
  VEC ("\xF4\x90", 1, S_4F4);
}
END_TEST


START_TEST (test_utf8_pending_counts_bytes_seen_in_each_state)
{
  tu_use_variant (_i);
  ck_assert_uint_eq (ws_utf8_pending (S_NORMAL), 0);
  ck_assert_uint_eq (ws_utf8_pending (S_2_1), 1);
  ck_assert_uint_eq (ws_utf8_pending (S_3E0), 1);
  ck_assert_uint_eq (ws_utf8_pending (S_3ED), 1);
  ck_assert_uint_eq (ws_utf8_pending (S_3_1), 1);
  ck_assert_uint_eq (ws_utf8_pending (S_3_2), 2);
  ck_assert_uint_eq (ws_utf8_pending (S_4F0), 1);
  ck_assert_uint_eq (ws_utf8_pending (S_4F4), 1);
  ck_assert_uint_eq (ws_utf8_pending (S_4_1), 1);
  ck_assert_uint_eq (ws_utf8_pending (S_4_2), 2);
  ck_assert_uint_eq (ws_utf8_pending (S_4_3), 3);
}
END_TEST


START_TEST (test_utf8_pending_matches_state_after_every_prefix)
{
  tu_use_variant (_i);
  /* For each truncated character, pending() is the number of bytes given. */
  static const uint32_t cps[] = { 0x80,   0x7FF,  0x800,   0xFFF,   0xD7FF,
                                  0xE000, 0xFFFF, 0x10000, 0x40000, 0x10FFFF };
  size_t i;
  size_t k;
  for (i = 0; i < sizeof (cps) / sizeof (cps[0]); i++)
  {
    unsigned char s[4];
    size_t l = encode_cp (s, cps[i]);
    for (k = 1; k < l; k++)
    {
      int step = S_NORMAL;
      ck_assert_uint_eq (variant_check (&step, s, k), k);
      ck_assert_msg (ws_utf8_pending (step) == k,
                     "U+%04lX cut after %zu bytes: pending %u (state %s)",
                     (unsigned long) cps[i], k, ws_utf8_pending (step),
                     state_name (step));
    }
  }
}
END_TEST


/* ------------------------------------------------------------ splits */

/* Checks @a s fed whole against @a s fed as two pieces cut at every
   offset and as one byte per call. */
static void
check_splits (const unsigned char *s, size_t len, const char *what, size_t tag)
{
  int wstep = S_NORMAL;
  size_t wr = variant_check (&wstep, s, len);
  size_t cut;
  size_t i;
  int step;
  size_t r;

  for (cut = 0; cut <= len; cut++)
  {
    step = S_NORMAL;
    r = variant_check (&step, s, cut);
    if (r == cut)
      r = cut + variant_check (&step, s + cut, len - cut);
    EXPECT (r == wr && step == wstep,
            "%s %zu cut at %zu: %zu/%s, whole gave %zu/%s", what, tag, cut, r,
            state_name (step), wr, state_name (wstep));
  }
  step = S_NORMAL;
  for (i = 0; i < len; i++)
    if (1 != variant_check (&step, s + i, 1))
      break;
  EXPECT (i == wr && step == wstep,
          "%s %zu byte by byte: %zu/%s, whole gave %zu/%s", what, tag, i,
          state_name (step), wr, state_name (wstep));
}


START_TEST (test_utf8_two_pieces_same_as_whole_vectors)
{
  tu_use_variant (_i);
  static const char *const texts[] = {
    "",
    "plain ASCII text that is long enough for word-wide paths, 0123456789",
    "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",
    "a\xF0\x9F\x98\x80z\xF4\x8F\xBF\xBF\xEF\xBF\xBD",
    "0123456789abcde\xF0\x90\x80\x80"
    "0123456789abcdef\xE0\xA0\x80",
    "valid then \xED\xA0\x80 surrogate",
    "valid then \xC0\xAF overlong",
    "ends cut \xE2\x82",
    "ends cut \xF0\x9F\x98",
    "\xF4\x90\x80\x80 too large",
    "\x80 stray first",
    "abcdefghijklmnop\xFF",
    "abcdefg\xE0\x80\x80",
  };
  size_t i;
  for (i = 0; i < sizeof (texts) / sizeof (texts[0]); i++)
  {
    check_splits ((const unsigned char *) texts[i], strlen (texts[i]), "vector",
                  i);
    compare ((const unsigned char *) texts[i], strlen (texts[i]), "vector", i);
  }
}
END_TEST


START_TEST (test_utf8_two_pieces_same_as_whole_random)
{
  tu_use_variant (_i);
  /* Random texts, some with a few bytes replaced by troublesome ones. */
  static const unsigned char bad[] = { 0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xE0,
                                       0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
                                       0x00, 0x9F, 0xA0, 0x8F, 0x90 };
  unsigned char s[200];
  unsigned iter;
  seed (0x5eed);
  for (iter = 0; iter < 600; iter++)
  {
    size_t len = rnd () % sizeof (s);
    unsigned m;
    random_text (s, len);
    for (m = 0; len > 0 && m < iter % 3; m++)
      s[rnd () % len] = bad[rnd () % sizeof (bad)];
    check_splits (s, len, "random text", iter);
    compare (s, len, "random text", iter);
  }
}
END_TEST


START_TEST (test_utf8_three_pieces_same_as_whole)
{
  tu_use_variant (_i);
  /* Every pair of cuts in a short text whose characters all cross word
     boundaries somewhere. */
  static const char text[] =
    "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z\xED\x9F\xBF\xEE\x80\x80\xF4\x8F"
    "\xBF\xBF!";
  const unsigned char *s = (const unsigned char *) text;
  size_t len = sizeof (text) - 1;
  size_t c1;
  size_t c2;
  for (c1 = 0; c1 <= len; c1++)
    for (c2 = c1; c2 <= len; c2++)
    {
      int step = S_NORMAL;
      ck_assert_uint_eq (variant_check (&step, s, c1), c1);
      ck_assert_uint_eq (variant_check (&step, s + c1, c2 - c1), c2 - c1);
      ck_assert_uint_eq (variant_check (&step, s + c2, len - c2), len - c2);
      ck_assert_int_eq (step, S_NORMAL);
    }
}
END_TEST


/* ------------------------------------------------------------ long texts */

START_TEST (test_utf8_long_ascii_every_length_and_alignment)
{
  tu_use_variant (_i);
  unsigned char *buf = malloc (300 + 16);
  size_t len;
  size_t a;
  size_t i;
  ck_assert_ptr_nonnull (buf);
  for (i = 0; i < 316; i++)
    buf[i] = (unsigned char) (0x20 + i % 0x5F);
  buf[0] = 0x00;
  buf[1] = 0x7F; /* the ASCII extremes */
  for (a = 0; a < 16; a++)
    for (len = 0; len <= 300; len++)
    {
      int step = S_NORMAL;
      size_t r = variant_check (&step, buf + a, len);
      EXPECT (r == len && S_NORMAL == step, "ASCII len %zu align %zu: %zu/%s",
              len, a, r, state_name (step));
    }
  free (buf);
}
END_TEST


START_TEST (test_utf8_long_ascii_with_high_byte_at_every_position)
{
  tu_use_variant (_i);
  /* One non-ASCII byte at each position of a 301-byte ASCII text at every
     alignment: where a word-wide ASCII test finds the high bit. */
  static const unsigned char bytes[] = { 0x80, 0xC2, 0xE0, 0xF0, 0xFF };
  unsigned char *buf = malloc (301 + 16);
  size_t a;
  size_t pos;
  size_t k;
  ck_assert_ptr_nonnull (buf);
  for (k = 0; k < sizeof (bytes); k++)
    for (a = 0; a < 16; a++)
      for (pos = 0; pos < 301; pos++)
      {
        memset (buf, 'x', 301 + 16);
        buf[a + pos] = bytes[k];
        compare (buf + a, 301, "high byte at", pos);
      }
  free (buf);
}
END_TEST


START_TEST (test_utf8_mixed_text_with_invalid_byte_at_every_position)
{
  tu_use_variant (_i);
  /* A 301-byte mixed 1-4 byte text, with one byte replaced at each
     position 0..300, at start addresses 0..15; also the text itself. */
  static const unsigned char bad[] = { 0x80, 0xBF, 0xC0, 0xC1, 0xE0, 0xED,
                                       0xF4, 0xF5, 0xFE, 0xFF, 0x41, 0x90 };
  unsigned char text[301];
  unsigned char *buf = malloc (301 + 16);
  size_t a;
  size_t pos;
  size_t k;
  int t;

  ck_assert_ptr_nonnull (buf);
  for (t = 0; t < 3; t++)
  {
    seed (0x301u + (uint32_t) t);
    random_text (text, sizeof (text));
    for (a = 0; a < 16; a++)
    {
      memcpy (buf + a, text, sizeof (text));
      compare (buf + a, sizeof (text), "clean mixed text, align", a);
      for (pos = 0; pos < sizeof (text); pos++)
        for (k = 0; k < sizeof (bad); k++)
        {
          memcpy (buf + a, text, sizeof (text));
          buf[a + pos] = bad[k];
          compare (buf + a, sizeof (text), "mixed text, bad byte at", pos);
        }
    }
  }
  free (buf);
}
END_TEST


START_TEST (test_utf8_random_texts_match_reference)
{
  tu_use_variant (_i);
  /* Valid texts of every length 0..400 at each alignment, each also cut
     short by 1..3 bytes (ending in a pending state). */
  unsigned char text[400];
  unsigned char *buf = malloc (400 + 16);
  size_t len;
  size_t a;
  size_t cut;

  ck_assert_ptr_nonnull (buf);
  seed (0xABCDEF);
  for (len = 0; len <= sizeof (text); len++)
  {
    random_text (text, len);
    for (a = 0; a < 16; a++)
    {
      memcpy (buf + a, text, len);
      compare (buf + a, len, "random valid text, length", len);
      for (cut = 1; cut <= 3 && cut <= len; cut++)
        compare (buf + a, len - cut, "random valid text cut, length", len);
    }
  }
  free (buf);
}
END_TEST


START_TEST (test_utf8_pending_state_honoured_before_fast_path)
{
  tu_use_variant (_i);
  /* A pending sequence followed by a long ASCII run: the first byte must
     be judged by the pending state, never skipped as plain ASCII. */
  static const char *const tails[NSTATES] = {
    "",     "\x80",         "\xA0\x80",     "\x9F\xBF",     "\xBF\xBF",
    "\x80", "\x90\x80\x80", "\x8F\xBF\xBF", "\x80\x80\x80", "\x80\x80",
    "\x80",
  };
  unsigned char *buf = malloc (256 + 16);
  int st;
  size_t a;
  ck_assert_ptr_nonnull (buf);
  for (st = 1; st < NSTATES; st++)
    for (a = 0; a < 16; a++)
    {
      size_t tl = strlen (tails[st]);
      int step = st;
      size_t r;
      memset (buf, 'A', 256 + 16);
      r = variant_check (&step, buf + a, 256);
      EXPECT (0 == r && st == step,
              "from %s, 256 ASCII at align %zu: %zu/%s instead of 0/%s",
              state_name (st), a, r, state_name (step), state_name (st));
      /* the right tails complete it, and the ASCII after them is fine */
      memcpy (buf + a, tails[st], tl);
      step = st;
      r = variant_check (&step, buf + a, 256);
      EXPECT (256 == r && S_NORMAL == step,
              "from %s, tails then ASCII at align %zu: %zu/%s", state_name (st),
              a, r, state_name (step));
    }
  free (buf);
}
END_TEST


/* ------------------------------------------------------------ Kuhn */

START_TEST (test_utf8_kuhn_boundary_code_points)
{
  tu_use_variant (_i);
  VEC ("\x00", 1, S_NORMAL);
  VEC ("\x7F", 1, S_NORMAL);                     /* U+007F */
  VEC ("\xC2\x80", 2, S_NORMAL);                 /* U+0080 */
  VEC ("\xDF\xBF", 2, S_NORMAL);                 /* U+07FF */
  VEC ("\xE0\xA0\x80", 3, S_NORMAL);             /* U+0800 */
  VEC ("\xED\x9F\xBF", 3, S_NORMAL);             /* U+D7FF */
  VEC ("\xEE\x80\x80", 3, S_NORMAL);             /* U+E000 */
  VEC ("\xEF\xBF\xBD", 3, S_NORMAL);             /* U+FFFD */
  VEC ("\xEF\xBF\xBF", 3, S_NORMAL);             /* U+FFFF */
  VEC ("\xF0\x90\x80\x80", 4, S_NORMAL);         /* U+10000 */
  VEC ("\xF4\x8F\xBF\xBF", 4, S_NORMAL);         /* U+10FFFF */
  VEC ("\xF4\x90\x80\x80", 1, S_4F4);            /* U+110000 */
  VEC ("\xF7\xBF\xBF\xBF", 0, S_NORMAL);         /* U+1FFFFF */
  VEC ("\xF8\x88\x80\x80\x80", 0, S_NORMAL);     /* U+200000, 5 bytes */
  VEC ("\xFC\x84\x80\x80\x80\x80", 0, S_NORMAL); /* U+4000000, 6 bytes */
}
END_TEST


START_TEST (test_utf8_kuhn_overlong_slash_rejected_at_first_impossible_byte)
{
  tu_use_variant (_i);
  VEC ("\xC0\xAF", 0, S_NORMAL);
  VEC ("\xE0\x80\xAF", 1, S_3E0);
  VEC ("\xF0\x80\x80\xAF", 1, S_4F0);
  VEC ("\xF8\x80\x80\x80\xAF", 0, S_NORMAL);
  VEC ("\xFC\x80\x80\x80\x80\xAF", 0, S_NORMAL);
}
END_TEST


START_TEST (test_utf8_kuhn_maximum_overlongs_and_overlong_nul)
{
  tu_use_variant (_i);
  VEC ("\xC1\xBF", 0, S_NORMAL);      /* U+007F in 2 bytes */
  VEC ("\xE0\x9F\xBF", 1, S_3E0);     /* U+07FF in 3 bytes */
  VEC ("\xF0\x8F\xBF\xBF", 1, S_4F0); /* U+FFFF in 4 bytes */
  VEC ("\xC0\x80", 0, S_NORMAL);
  VEC ("\xE0\x80\x80", 1, S_3E0);
  VEC ("\xF0\x80\x80\x80", 1, S_4F0);
}
END_TEST


START_TEST (test_utf8_kuhn_surrogates_rejected)
{
  tu_use_variant (_i);
  static const char *const single[] = {
    "\xED\xA0\x80", "\xED\xAD\xBF", "\xED\xAE\x80", "\xED\xAF\xBF",
    "\xED\xB0\x80", "\xED\xBE\x80", "\xED\xBF\xBF",
  };
  size_t i;
  for (i = 0; i < sizeof (single) / sizeof (single[0]); i++)
    expect_vector (single[i], 3, 1, S_3ED);
  VEC ("\xED\xA0\x80\xED\xB0\x80", 1, S_3ED); /* U+D800 U+DC00 pair */
  VEC ("\xED\xAF\xBF\xED\xBF\xBF", 1, S_3ED); /* U+DBFF U+DFFF pair */
  /* the CESU-8 style surrogate as a 4-byte form does not exist either */
  VEC ("\xF0\x8D\xA0\x80", 1, S_4F0);
}
END_TEST


START_TEST (test_utf8_kuhn_noncharacters_are_valid_utf8)
{
  tu_use_variant (_i);
  VEC ("\xEF\xBF\xBE", 3, S_NORMAL);     /* U+FFFE */
  VEC ("\xEF\xBF\xBF", 3, S_NORMAL);     /* U+FFFF */
  VEC ("\xEF\xB7\x90", 3, S_NORMAL);     /* U+FDD0 */
  VEC ("\xEF\xB7\xAF", 3, S_NORMAL);     /* U+FDEF */
  VEC ("\xF0\x9F\xBF\xBE", 4, S_NORMAL); /* U+1FFFE */
  VEC ("\xF0\x9F\xBF\xBF", 4, S_NORMAL); /* U+1FFFF */
  VEC ("\xF4\x8F\xBF\xBE", 4, S_NORMAL); /* U+10FFFE */
}
END_TEST


START_TEST (test_utf8_kuhn_unexpected_continuation_bytes)
{
  tu_use_variant (_i);
  unsigned b;
  for (b = 0x80; b <= 0xBF; b++)
  {
    char s[3];
    s[0] = 'a';
    s[1] = (char) b;
    s[2] = 'b';
    expect_vector (s, 3, 1, S_NORMAL);
  }
  VEC ("\x80\xBF", 0, S_NORMAL);
  VEC ("\xC3\xA9\x80", 2, S_NORMAL); /* one tail too many */
  VEC ("\xE2\x82\xAC\xBF", 3, S_NORMAL);
}
END_TEST


START_TEST (test_utf8_kuhn_lonely_start_bytes_followed_by_space)
{
  tu_use_variant (_i);
  unsigned b;
  for (b = 0xC0; b <= 0xFF; b++)
  {
    char s[2];
    int want = rule_next (S_NORMAL, b);
    s[0] = (char) b;
    s[1] = ' ';
    if (want < 0)
      expect_vector (s, 2, 0, S_NORMAL); /* never a lead */
    else
      expect_vector (s, 2, 1, want); /* the space breaks the sequence */
  }
}
END_TEST


START_TEST (test_utf8_kuhn_incomplete_sequence_at_end_is_pending)
{
  tu_use_variant (_i);
  /* Not an error: the rest may come in the next call. */
  VEC ("\xC2", 1, S_2_1);
  VEC ("\xE0\xA0", 2, S_3_2);
  VEC ("\xE1\x80", 2, S_3_2);
  VEC ("\xF0\x90\x80", 3, S_4_3);
  VEC ("\xF1\x80\x80", 3, S_4_3);
  VEC ("\xDF", 1, S_2_1);
  VEC ("\xEF\xBF", 2, S_3_2);
  VEC ("\xF4\x8F\xBF", 3, S_4_3);
  /* concatenated incomplete sequences: the second lead breaks the first */
  VEC ("\xC0\xE0\x80\xF0\x80\x80", 0, S_NORMAL);
  VEC ("\xC2\xE1\x80", 1, S_2_1);
  VEC ("\xE1\x80\xF1\x80\x80", 2, S_3_2);
}
END_TEST


START_TEST (test_utf8_kuhn_impossible_bytes)
{
  tu_use_variant (_i);
  VEC ("\xFE", 0, S_NORMAL);
  VEC ("\xFF", 0, S_NORMAL);
  VEC ("\xFE\xFE\xFF\xFF", 0, S_NORMAL);
  VEC ("ab\xFE", 2, S_NORMAL);
  VEC ("\xF5\x80\x80\x80", 0, S_NORMAL);
  VEC ("\xF7\x80\x80\x80", 0, S_NORMAL);
}
END_TEST


START_TEST (test_utf8_kuhn_greek_kosme_valid)
{
  tu_use_variant (_i);
  VEC ("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", 11, S_NORMAL);
}
END_TEST


START_TEST (test_utf8_reads_nothing_outside_the_text)
{
  tu_use_variant (_i);
  /* Texts flush against a fence at their end or their start: a word-wide
     read past s + len or before s crashes.  ASCII, mixed text, and text
     ending in an unfinished sequence, of every length 0..300. */
  struct tu_fence f;
  unsigned char text[300];
  size_t len;
  int kind;
  int end;

  tu_fence_init (&f, sizeof (text));
  seed (0xFE7CE);
  for (len = 0; len <= sizeof (text); len++)
    for (kind = 0; kind < 3; kind++)
    {
      if (0 == kind)
        memset (text, 'q', len);
      else
        random_text (text, len);
      if (2 == kind && len > 0)
        text[len - 1] = 0xF1;
      for (end = 0; end < 2; end++)
      {
        unsigned char *p = tu_fence_place (&f, len, end);
        int st;
        memcpy (p, text, len);
        compare (p, len, "fenced text, length", len);
        /* from every state too: only the pending rules differ */
        for (st = 1; st < NSTATES; st++)
        {
          int step = st;
          size_t r = variant_check (&step, p, len);
          EXPECT (r <= len, "fenced text from %s: %zu > length %zu",
                  state_name (st), r, len);
        }
      }
    }
  tu_fence_free (&f);
}
END_TEST

/* ------------------------------------------------------------ variants */

/* Valid text whose ASCII runs and multi-byte characters change places
   at random, so that vector blocks are all-ASCII, mixed, or end inside
   a character in every combination. */
static void
runs_text (unsigned char *out, size_t len)
{
  size_t n = 0;
  while (n < len)
  {
    size_t run = (rnd () % 3 == 0) ? rnd () % 70 : 0;
    while (run-- > 0 && n < len)
      out[n++] = (unsigned char) ('a' + rnd () % 26);
    if (n < len)
    {
      unsigned char tmp[4];
      uint32_t cp = random_cp ();
      size_t l = encode_cp (tmp, (cp < 0x80) ? 0x10000 + cp : cp);
      if (l > len - n)
        out[n++] = 'z';
      else
      {
        memcpy (out + n, tmp, l);
        n += l;
      }
    }
  }
}

/* Compares the variant with the portable DFA from state @a from on one
   text: same index, same state. */
static void
against_portable (int from, const unsigned char *s, size_t len,
                  const char *what, size_t tag)
{
  int vstep = from;
  int pstep = from;
  size_t vr = variant_check (&vstep, s, len);
  size_t pr = ws_utf8_check_portable (&pstep, s, len);
  EXPECT (vr == pr && vstep == pstep,
          "%s: %s %zu (len %zu, from %s): %zu/%s, portable %zu/%s; bytes "
          "there: %s",
          variant->name, what, tag, len, state_name (from), vr,
          state_name (vstep), pr, state_name (pstep), hex (s, len, pr));
}

/* The bytes written over a valid text to break it.  Each is invalid
   wherever it lands: a stray continuation, never-valid bytes, leads
   followed by what they forbid, and leads cut short by ASCII. */
static const struct
{
  unsigned char b[3];
  size_t len;
} breakers[] = {
  { { 0x80 }, 1 },
  { { 0xBF }, 1 },
  { { 0xC0, 0x80 }, 2 },
  { { 0xC1, 0xBF }, 2 },
  { { 0xF5 }, 1 },
  { { 0xFF }, 1 },
  { { 0xE0, 0x9F, 0x80 }, 3 },
  { { 0xED, 0xA0, 0x80 }, 3 },
  { { 0xF0, 0x8F, 0x80 }, 3 },
  { { 0xF4, 0x90, 0x80 }, 3 },
  { { 0xC2, 'a' }, 2 },
  { { 0xE2, 0x82, 'a' }, 3 },
  { { 0xF1, 0x80, 0x80 }, 3 }, /* then whatever follows: cut or not */
};
#define NBREAKERS (sizeof (breakers) / sizeof (breakers[0]))

START_TEST (test_utf8_variant_error_at_every_position_near_vector_edges)
{
  /* A breaker at every position of texts of every length 0..200 that
     start at each of 4 alignments: the variant must name the same first
     bad byte and state as the DFA, errors in any lane or block, in the
     tail, or in the first bytes. */
  unsigned char buf[200 + 8];
  unsigned char text[200];
  size_t len;

  tu_use_variant (_i);
  seed (0xB0CA1);
  for (len = 0; len <= 200; len += (len < 140) ? 1 : 7)
  {
    size_t p;
    runs_text (text, len);
    for (p = 0; p < len; p++)
    {
      size_t k = (p + len) % NBREAKERS;
      unsigned char *t = buf + (p & 3);
      size_t m = breakers[k].len;
      memcpy (t, text, len);
      memcpy (t + p, breakers[k].b, (m > len - p) ? len - p : m);
      against_portable (S_NORMAL, t, len, "breaker at", p);
      /* an ASCII prefix first, so the vectors see the error late */
      against_portable (S_NORMAL, t + (p / 2), len - p / 2, "breaker at",
                        p - p / 2);
    }
  }
}
END_TEST


START_TEST (test_utf8_variant_random_bytes_and_texts_every_length_and_state)
{
  /* Every length 0..300 at 8 alignments, from every state: valid texts,
     valid texts with one random byte changed, random bytes. */
  unsigned char buf[300 + 8];
  size_t len;

  tu_use_variant (_i);
  seed (0x7A2D);
  for (len = 0; len <= 300; len++)
  {
    int from;
    unsigned char *t = buf + (len & 7);
    runs_text (t, len);
    for (from = 0; from < NSTATES; from++)
      against_portable (from, t, len, "valid text of length", len);
    if (len > 0)
    {
      t[rnd () % len] = (unsigned char) rnd ();
      against_portable (S_NORMAL, t, len, "one byte changed, length", len);
      for (from = 0; from < (int) len; from++)
        t[from] = (unsigned char) (0x80 | rnd ());
      against_portable (S_NORMAL, t, len, "random high bytes, length", len);
    }
  }
}
END_TEST


START_TEST (test_utf8_variant_state_carried_across_every_split)
{
  /* A text validated in two calls, split at every offset, ends in the
     same index and state as in one call (a sequence cut by the split
     is finished at the start of the second call), also when an error
     lies just after the split. */
  unsigned char text[260];
  size_t len = sizeof (text);
  int round;

  tu_use_variant (_i);
  seed (0x5EA7);
  for (round = 0; round < 6; round++)
  {
    size_t k;
    int wstep = S_NORMAL;
    size_t wr;
    runs_text (text, len);
    if (round >= 3)
      text[100 + 37 * (round - 3)] = 0xC0;
    wr = ws_utf8_check_portable (&wstep, text, len);
    for (k = 0; k <= len; k++)
    {
      int step = S_NORMAL;
      size_t r = variant_check (&step, text, k);
      if (r == k)
        r = k + variant_check (&step, text + k, len - k);
      EXPECT (r == wr && step == wstep,
              "%s: split at %zu: %zu/%s, whole %zu/%s", variant->name, k, r,
              state_name (step), wr, state_name (wstep));
    }
  }
}
END_TEST


/* Masks @a len bytes of @a s with @a key from payload offset @a off. */
static void
mask_with (unsigned char *out, const unsigned char *s, size_t len,
           const uint8_t key[4], uint64_t off)
{
  size_t i;
  for (i = 0; i < len; i++)
    out[i] = (unsigned char) (s[i] ^ key[(off + i) % 4]);
}

START_TEST (test_utf8_variant_unmask_check_matches_check_of_plain_text)
{
  /* The fused unmask-and-validate gives the index and state of
     validating the unmasked text, and writes the unmasked bytes up to
     that index: every length 0..300, every key phase, a plain copy
     (NULL key), valid and broken texts, every start state. */
  static const uint8_t key[4] = { 0x9B, 0x00, 0x80, 0x3C };
  unsigned char text[300];
  unsigned char masked[300 + 4];
  unsigned char out[300 + 4];
  size_t len;

  tu_use_variant (_i);
  seed (0xFACE);
  for (len = 0; len <= 300; len++)
  {
    unsigned off;
    runs_text (text, len);
    if (len > 0 && 0 == len % 3)
      text[(len * 7) % len] = breakers[len % NBREAKERS].b[0];
    for (off = 0; off < 5; off++)
    {
      const uint8_t *k = (4 == off) ? NULL : key;
      int from = (int) ((len + off) % NSTATES);
      int pstep = from;
      int vstep = from;
      size_t pr = ws_utf8_check_portable (&pstep, text, len);
      size_t vr;
      unsigned char *src = masked + (len & 3);
      if (NULL != k)
        mask_with (src, text, len, k, off);
      else
        memcpy (src, text, len);
      memset (out, 0xEE, sizeof (out));
      vr = variant->utf8_unmask (&vstep, out + off % 4, src, len, k, off);
      EXPECT (vr == pr && vstep == pstep,
              "%s: unmask len %zu off %u from %s: %zu/%s, check says %zu/%s",
              variant->name, len, off, state_name (from), vr,
              state_name (vstep), pr, state_name (pstep));
      EXPECT (0 == memcmp (out + off % 4, text, vr),
              "%s: unmask len %zu off %u: wrong bytes before %zu",
              variant->name, len, off, vr);
      EXPECT (0xEE == out[off % 4 + len] || len + off % 4 >= sizeof (out),
              "%s: unmask len %zu: wrote past the end", variant->name, len);
    }
  }
}
END_TEST


START_TEST (test_utf8_variant_unmask_in_pieces_equals_whole)
{
  /* A masked 1000-byte payload fed in pieces of every size 1..70, the
     key phase and the UTF-8 state carried from piece to piece, as the
     decoder does. */
  static const uint8_t key[4] = { 0x12, 0xF3, 0x80, 0x7F };
  unsigned char text[1000];
  unsigned char masked[1000];
  unsigned char out[1000];
  size_t piece;

  tu_use_variant (_i);
  seed (0x91ECE);
  runs_text (text, sizeof (text));
  mask_with (masked, text, sizeof (text), key, 0);
  for (piece = 1; piece <= 70; piece++)
  {
    int step = S_NORMAL;
    size_t at = 0;
    while (at < sizeof (text))
    {
      size_t n = (sizeof (text) - at > piece) ? piece : sizeof (text) - at;
      size_t r =
        variant->utf8_unmask (&step, out + at, masked + at, n, key, at);
      EXPECT (r == n, "%s: pieces of %zu: error at %zu", variant->name, piece,
              at + r);
      at += n;
    }
    EXPECT (S_NORMAL == step && 0 == memcmp (out, text, sizeof (text)),
            "%s: pieces of %zu: wrong result", variant->name, piece);
  }
}
END_TEST


START_TEST (test_utf8_variant_unmask_reads_and_writes_only_its_buffers)
{
  /* Source and destination flush against fences, at either end. */
  static const uint8_t key[4] = { 1, 2, 3, 4 };
  struct tu_fence fs;
  struct tu_fence fd;
  unsigned char text[300];
  size_t len;

  tu_use_variant (_i);
  tu_fence_init (&fs, sizeof (text));
  tu_fence_init (&fd, sizeof (text));
  seed (0xF3);
  for (len = 0; len <= sizeof (text); len++)
  {
    int end;
    runs_text (text, len);
    for (end = 0; end < 2; end++)
    {
      unsigned char *src = tu_fence_place (&fs, len, end);
      unsigned char *dst = tu_fence_place (&fd, len, ! end);
      int step = S_NORMAL;
      size_t r;
      mask_with (src, text, len, key, 3);
      r = variant->utf8_unmask (&step, dst, src, len, key, 3);
      EXPECT (r == len && 0 == memcmp (dst, text, len),
              "%s: fenced unmask of length %zu failed", variant->name, len);
    }
  }
  tu_fence_free (&fs);
  tu_fence_free (&fd);
}
END_TEST


START_TEST (test_utf8_variant_empty_input_may_be_null)
{
  /* No bytes: NULL buffers are fine (the encoder passes a NULL payload
     of length 0), nothing is read or written, the state stays. */
  static const uint8_t key[4] = { 1, 2, 3, 4 };
  int from;

  tu_use_variant (_i);
  for (from = 0; from < NSTATES; from++)
  {
    int step = from;
    ck_assert_uint_eq (variant_check (&step, NULL, 0), 0);
    ck_assert_int_eq (step, from);
    ck_assert_uint_eq (variant->utf8_unmask (&step, NULL, NULL, 0, key, 3), 0);
    ck_assert_int_eq (step, from);
    ck_assert_uint_eq (variant->utf8_unmask (&step, NULL, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq (step, from);
  }
}
END_TEST


START_TEST (test_utf8_entry_points_use_the_best_variant)
{
  /* The dispatching entry points agree with the best variant, which is
     the last in the list. */
  static const uint8_t key[4] = { 7, 0, 0x80, 0xFF };
  const struct ws_simd_impl *list;
  size_t n = ws_simd_impls (&list);
  unsigned char text[500];
  unsigned char m[500];
  unsigned char o1[500];
  unsigned char o2[500];
  int s1 = S_NORMAL;
  int s2 = S_NORMAL;

  tu_use_variant (_i);
  ck_assert_ptr_eq (ws_simd_best (), &list[n - 1]);
  seed (0xE7);
  runs_text (text, sizeof (text));
  text[333] = 0xF8;
  ck_assert_uint_eq (ws_utf8_check (&s1, text, sizeof (text)),
                     list[n - 1].utf8_check (&s2, text, sizeof (text)));
  ck_assert_int_eq (s1, s2);
  mask_with (m, text, sizeof (text), key, 2);
  s1 = s2 = S_NORMAL;
  ck_assert_uint_eq (ws_utf8_unmask_check (&s1, o1, m, sizeof (m), key, 2),
                     333);
  ck_assert_uint_eq (list[n - 1].utf8_unmask (&s2, o2, m, sizeof (m), key, 2),
                     333);
  ck_assert_int_eq (s1, s2);
  ck_assert_mem_eq (o1, text, 333);
}
END_TEST


static Suite *
utf8_suite (void)
{
  Suite *s = suite_create ("utf8");
  TCase *ex = tcase_create ("exhaustive");
  TCase *st = tcase_create ("states");
  TCase *sp = tcase_create ("splits");
  TCase *lg = tcase_create ("long texts");
  TCase *ku = tcase_create ("kuhn");
  TCase *va = tcase_create ("variants");
  int n_variants = tu_count_variants ();

  /* generous for sanitizer builds; a normal build needs about a second
     for the largest test */
  tcase_set_timeout (ex, 120);
  tcase_set_timeout (lg, 120);
  tcase_set_timeout (sp, 60);
  tcase_add_loop_test (ex, test_utf8_every_one_byte_sequence, 0, n_variants);
  tcase_add_loop_test (ex, test_utf8_every_two_byte_sequence, 0, n_variants);
  tcase_add_loop_test (ex, test_utf8_every_three_byte_sequence, 0, n_variants);
  tcase_add_loop_test (
    ex, test_utf8_four_byte_sequences_every_lead_second_third, 0, n_variants);
  tcase_add_loop_test (ex, test_utf8_every_valid_code_point_accepted, 0,
                       n_variants);
  suite_add_tcase (s, ex);

  tcase_add_loop_test (st, test_utf8_state_after_each_lead_byte, 0, n_variants);
  tcase_add_loop_test (st, test_utf8_state_after_each_tail_byte, 0, n_variants);
  tcase_add_loop_test (
    st, test_utf8_each_state_accepts_exactly_the_allowed_next_bytes, 0,
    n_variants);
  tcase_add_loop_test (st, test_utf8_each_state_then_every_two_bytes, 0,
                       n_variants);
  tcase_add_loop_test (st, test_utf8_empty_input_keeps_state, 0, n_variants);
  tcase_add_loop_test (st, test_utf8_error_reports_state_before_bad_byte, 0,
                       n_variants);
  tcase_add_loop_test (st, test_utf8_pending_counts_bytes_seen_in_each_state, 0,
                       n_variants);
  tcase_add_loop_test (st, test_utf8_pending_matches_state_after_every_prefix,
                       0, n_variants);
  suite_add_tcase (s, st);

  tcase_add_loop_test (sp, test_utf8_two_pieces_same_as_whole_vectors, 0,
                       n_variants);
  tcase_add_loop_test (sp, test_utf8_two_pieces_same_as_whole_random, 0,
                       n_variants);
  tcase_add_loop_test (sp, test_utf8_three_pieces_same_as_whole, 0, n_variants);
  suite_add_tcase (s, sp);

  tcase_add_loop_test (lg, test_utf8_long_ascii_every_length_and_alignment, 0,
                       n_variants);
  tcase_add_loop_test (
    lg, test_utf8_long_ascii_with_high_byte_at_every_position, 0, n_variants);
  tcase_add_loop_test (lg,
                       test_utf8_mixed_text_with_invalid_byte_at_every_position,
                       0, n_variants);
  tcase_add_loop_test (lg, test_utf8_random_texts_match_reference, 0,
                       n_variants);
  tcase_add_loop_test (lg, test_utf8_pending_state_honoured_before_fast_path, 0,
                       n_variants);
  tcase_add_loop_test (lg, test_utf8_reads_nothing_outside_the_text, 0,
                       n_variants);
  suite_add_tcase (s, lg);

  tcase_add_loop_test (ku, test_utf8_kuhn_boundary_code_points, 0, n_variants);
  tcase_add_loop_test (
    ku, test_utf8_kuhn_overlong_slash_rejected_at_first_impossible_byte, 0,
    n_variants);
  tcase_add_loop_test (ku, test_utf8_kuhn_maximum_overlongs_and_overlong_nul, 0,
                       n_variants);
  tcase_add_loop_test (ku, test_utf8_kuhn_surrogates_rejected, 0, n_variants);
  tcase_add_loop_test (ku, test_utf8_kuhn_noncharacters_are_valid_utf8, 0,
                       n_variants);
  tcase_add_loop_test (ku, test_utf8_kuhn_unexpected_continuation_bytes, 0,
                       n_variants);
  tcase_add_loop_test (ku, test_utf8_kuhn_lonely_start_bytes_followed_by_space,
                       0, n_variants);
  tcase_add_loop_test (ku, test_utf8_kuhn_incomplete_sequence_at_end_is_pending,
                       0, n_variants);
  tcase_add_loop_test (ku, test_utf8_kuhn_impossible_bytes, 0, n_variants);
  tcase_add_loop_test (ku, test_utf8_kuhn_greek_kosme_valid, 0, n_variants);
  suite_add_tcase (s, ku);

  tcase_set_timeout (va, 120);
  tcase_add_loop_test (
    va, test_utf8_variant_error_at_every_position_near_vector_edges, 0,
    n_variants);
  tcase_add_loop_test (
    va, test_utf8_variant_random_bytes_and_texts_every_length_and_state, 0,
    n_variants);
  tcase_add_loop_test (va, test_utf8_variant_state_carried_across_every_split,
                       0, n_variants);
  tcase_add_loop_test (
    va, test_utf8_variant_unmask_check_matches_check_of_plain_text, 0,
    n_variants);
  tcase_add_loop_test (va, test_utf8_variant_unmask_in_pieces_equals_whole, 0,
                       n_variants);
  tcase_add_loop_test (
    va, test_utf8_variant_unmask_reads_and_writes_only_its_buffers, 0,
    n_variants);
  tcase_add_loop_test (va, test_utf8_variant_empty_input_may_be_null, 0,
                       n_variants);
  tcase_add_loop_test (va, test_utf8_entry_points_use_the_best_variant, 0,
                       n_variants);
  suite_add_tcase (s, va);
  return s;
}


int
main (void)
{
  SRunner *sr = srunner_create (utf8_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (failed > 0) ? EXIT_FAILURE : EXIT_SUCCESS;
}
