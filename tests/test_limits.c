/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_limits.c
 * @brief Length arithmetic at its limits and reads or writes past the end
 *        of a buffer: one test per case found reviewing src/.
 *
 * Review notes (what the tests below pin down):
 * - Frame lengths are 64-bit on the wire but buffers are size_t: the
 *   decoder refuses (MAXIMUM_SIZE_EXCEEDED) any payload that could not be
 *   buffered with its NUL and held-back UTF-8 bytes, and the encoder any
 *   frame whose header + payload + NUL would not fit in size_t.  On
 *   64-bit hosts those checks cannot trigger before the 2^63-1 rules do;
 *   the tests spell out both sides with SIZE_MAX arithmetic.
 * - A data frame's length is added to the bytes already buffered for the
 *   message (reassembled fragments, or with WANT_FRAGMENTS the start of a
 *   character held back from the previous fragment) before it is
 *   compared with the limit; the sum is 64-bit and cannot wrap.
 * - The message buffer grows to 1.5 times what is needed.  On a 32-bit
 *   host that product would wrap for a message above 2/3 of the address
 *   space, which cannot be held there anyway; on 64-bit it cannot be
 *   reached.  The fenced allocator below checks that every write stays
 *   inside what was asked for, for every growth step it can reach.
 * - Word-wide loops (unmasking, the ASCII skip of the UTF-8 validator)
 *   and the header parser must not read beyond the caller's bytes: inputs
 *   are placed so that they end at an inaccessible page.
 * - Sec-WebSocket-Accept is written into a caller buffer of exactly 29
 *   bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include "microhttpd_ws.h"
#include "testutil.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#define HAVE_MMAP_FENCE 1
#endif

#define ST_OK MHD_WEBSOCKET_STATUS_OK
#define ST_TEXT MHD_WEBSOCKET_STATUS_TEXT_FRAME
#define ST_BIN MHD_WEBSOCKET_STATUS_BINARY_FRAME
#define ST_PROTO MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR
#define ST_MEM MHD_WEBSOCKET_STATUS_MEMORY_ERROR
#define ST_MAX MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED
#define ST_PARAM MHD_WEBSOCKET_STATUS_PARAMETER_ERROR
#define F_SERVER MHD_WEBSOCKET_FLAG_SERVER
#define F_CLIENT MHD_WEBSOCKET_FLAG_CLIENT
#define F_FRAGS MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS
#define F_CLOSE MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR
#define V_VALID MHD_WEBSOCKET_VALIDITY_VALID

#define MAX63 UINT64_C (0x7FFFFFFFFFFFFFFF)

static const uint8_t MK[4] = { 0xA1, 0x5C, 0x03, 0xE7 };

static void
setup (void)
{
  tu_alloc_reset ();
}

/** A frame header with a 64-bit length, masked when @a masked. */
static size_t
header64 (unsigned char *h, unsigned b0, uint64_t len, int masked)
{
  int i;
  h[0] = (unsigned char) b0;
  h[1] = (unsigned char) (127 | (masked ? 0x80 : 0));
  for (i = 0; i < 8; i++)
    h[2 + i] = (unsigned char) (len >> (56 - 8 * i));
  if (! masked)
    return 10;
  memcpy (h + 10, MK, 4);
  return 14;
}

/* ------------------------------------------------------------ allocators */

/* Remembers the sizes asked for and refuses anything above 1 MiB, so that
   a request for 2^63 bytes is seen without the C library (or a sanitizer)
   being asked for it. */
static size_t big_last_request;
static long big_refused;

static void *
big_malloc (size_t len)
{
  big_last_request = len;
  if (len > ((size_t) 1 << 20))
  {
    big_refused++;
    return NULL;
  }
  return malloc (len);
}

static void *
big_realloc (void *p, size_t len)
{
  big_last_request = len;
  if (len > ((size_t) 1 << 20))
  {
    big_refused++;
    return NULL;
  }
  return realloc (p, len);
}

#ifdef HAVE_MMAP_FENCE
/* Every block ends right before an inaccessible page, so a write (or a
   read) one byte past what was asked for crashes the test.  The size is
   kept in front of the block, on the same mapping. */
struct fence_block
{
  unsigned char *map;
  size_t map_len;
  size_t len;
};

static long fence_live;

static void *
fence_malloc (size_t len)
{
  size_t page = (size_t) sysconf (_SC_PAGESIZE);
  size_t need = len + sizeof (struct fence_block);
  size_t data_pages = (need + page - 1) / page;
  size_t map_len = (data_pages + 1) * page;
  unsigned char *m;
  unsigned char *p;
  struct fence_block fb;

  if (len > ((size_t) 64 << 20))
    return NULL;
  m = mmap (NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
            -1, 0);
  if (MAP_FAILED == m)
    return NULL;
  if (0 != mprotect (m + data_pages * page, page, PROT_NONE))
  {
    munmap (m, map_len);
    return NULL;
  }
  p = m + data_pages * page - len;
  fb.map = m;
  fb.map_len = map_len;
  fb.len = len;
  memcpy (p - sizeof (fb), &fb, sizeof (fb));
  fence_live++;
  return p;
}

static void
fence_free (void *buf)
{
  struct fence_block fb;
  if (NULL == buf)
    return;
  memcpy (&fb, (unsigned char *) buf - sizeof (fb), sizeof (fb));
  munmap (fb.map, fb.map_len);
  fence_live--;
}

static void *
fence_realloc (void *buf, size_t len)
{
  struct fence_block fb;
  void *n;
  if (NULL == buf)
    return fence_malloc (len);
  memcpy (&fb, (unsigned char *) buf - sizeof (fb), sizeof (fb));
  n = fence_malloc (len);
  if (NULL == n)
    return NULL;
  memcpy (n, buf, fb.len < len ? fb.len : len);
  fence_free (buf);
  return n;
}
#endif

/* ------------------------------------------------------------ encoding */

/* Lengths that no frame can carry: above 2^63-1, up to SIZE_MAX.  The
   payload pointer is a 1-byte buffer that ends at a fence, so touching
   more than its first byte crashes. */
START_TEST (test_encode_lengths_above_63_bits_refused_untouched)
{
#if SIZE_MAX > 0x7FFFFFFFFFFFFFFF
  static const size_t lens[] = { (size_t) MAX63 + 1, (size_t) MAX63 + 2,
                                 SIZE_MAX - 15, SIZE_MAX - 1, SIZE_MAX };
  struct tu_fence f;
  const char *p;
  size_t i;
  int mode;

  tu_fence_init (&f, 1);
  p = (const char *) tu_fence_place (&f, 1, 1);
  for (mode = 0; mode < 2; mode++)
  {
    struct MHD_WebSocketStream *ws = tu_stream (mode ? F_CLIENT : F_SERVER, 0);
    for (i = 0; i < sizeof (lens) / sizeof (lens[0]); i++)
    {
      char *frame = (char *) 1;
      size_t frame_len = 7;
      int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
      long calls = tu_alloc_calls;
      ck_assert_int_eq (
        MHD_websocket_encode_binary (
          ws, p, lens[i], MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame, &frame_len),
        ST_MAX);
      ck_assert_ptr_null (frame);
      ck_assert_uint_eq (frame_len, 0);
      ck_assert_int_eq (MHD_websocket_encode_text (
                          ws, p, lens[i], MHD_WEBSOCKET_FRAGMENTATION_FIRST,
                          &frame, &frame_len, &step),
                        ST_MAX);
      ck_assert_ptr_null (frame);
      /* Nothing was allocated for the refused frames. */
      ck_assert_int_eq (tu_alloc_calls, calls);
    }
    tu_stream_end (ws);
  }
  tu_fence_free (&f);
#else
  /* Where size_t is 32 bits every length fits in 63 bits; the frame must
     still fit in size_t with its header and NUL. */
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  static const char one[1] = { 'x' };
  char *frame;
  size_t frame_len;
  long calls = tu_alloc_calls;
  ck_assert_int_eq (MHD_websocket_encode_binary (
                      ws, one, SIZE_MAX - 5, MHD_WEBSOCKET_FRAGMENTATION_NONE,
                      &frame, &frame_len),
                    ST_MAX);
  ck_assert_int_eq (tu_alloc_calls, calls);
  tu_stream_end (ws);
#endif
}
END_TEST

/* Control frames and close reasons: the 125-byte limit is checked before
   the bytes are read or anything is allocated, however large the length. */
START_TEST (test_encode_control_lengths_near_size_max)
{
  static const size_t lens[] = { 126, 65536, SIZE_MAX / 2, SIZE_MAX - 1,
                                 SIZE_MAX };
  struct tu_fence f;
  const char *p;
  size_t i;
  struct MHD_WebSocketStream *ws = tu_stream (F_CLIENT, 0);

  tu_fence_init (&f, 1);
  p = (const char *) tu_fence_place (&f, 1, 1);
  for (i = 0; i < sizeof (lens) / sizeof (lens[0]); i++)
  {
    char *frame;
    size_t frame_len;
    long calls = tu_alloc_calls;
    ck_assert_int_eq (
      MHD_websocket_encode_ping (ws, p, lens[i], &frame, &frame_len), ST_MAX);
    ck_assert_int_eq (
      MHD_websocket_encode_pong (ws, p, lens[i], &frame, &frame_len), ST_MAX);
    ck_assert_int_eq (
      MHD_websocket_encode_close (ws, 1000, p, lens[i], &frame, &frame_len),
      ST_MAX);
    ck_assert_ptr_null (frame);
    ck_assert_int_eq (tu_alloc_calls, calls);
  }
  tu_stream_end (ws);
  tu_fence_free (&f);
}
END_TEST

/* 2^63-1 is a legal length: the encoder asks for exactly frame_len + 1
   bytes (header 10, or 14 masked) and reports MEMORY_ERROR when it cannot
   have them, without reading the payload first. */
START_TEST (test_encode_max_length_asks_exact_size)
{
#if SIZE_MAX > 0x7FFFFFFFFFFFFFFF
  static const char one[1] = { 'x' };
  unsigned rng_state = 1;
  int mode;
  for (mode = 0; mode < 2; mode++)
  {
    struct MHD_WebSocketStream *ws;
    char *frame = (char *) 1;
    size_t frame_len = 3;
    ck_assert_int_eq (MHD_websocket_stream_init2 (
                        &ws, mode ? F_CLIENT : F_SERVER, 0, big_malloc,
                        big_realloc, free, &rng_state, tu_rng),
                      ST_OK);
    big_last_request = 0;
    big_refused = 0;
    ck_assert_int_eq (MHD_websocket_encode_binary (
                        ws, one, (size_t) MAX63,
                        MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame, &frame_len),
                      ST_MEM);
    ck_assert_ptr_null (frame);
    ck_assert_uint_eq (frame_len, 0);
    ck_assert_int_eq (big_refused, 1);
    ck_assert_uint_eq (big_last_request, (size_t) MAX63 + (mode ? 14 : 10) + 1);
    ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  }
#else
  /* 32-bit: the largest frame that fits in size_t with header and NUL. */
  static const char one[1] = { 'x' };
  struct MHD_WebSocketStream *ws;
  char *frame;
  size_t frame_len;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, F_SERVER, 0, big_malloc,
                                                big_realloc, free, NULL, NULL),
                    ST_OK);
  ck_assert_int_eq (MHD_websocket_encode_binary (
                      ws, one, SIZE_MAX - 11, MHD_WEBSOCKET_FRAGMENTATION_NONE,
                      &frame, &frame_len),
                    ST_MEM);
  ck_assert_uint_eq (big_last_request, SIZE_MAX);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
#endif
}
END_TEST

/* ------------------------------------------------------------ decoding */

/* Announced lengths at the top of the 63-bit range against every kind of
   limit: max 0 (none), the largest limit allowed (2^63-1), one below. */
START_TEST (test_decode_max_length_against_limits)
{
  unsigned char h[14];
  size_t hl = header64 (h, 0x82, MAX63, 1);
  struct tu_result r;

  /* No limit: accepted, nothing allocated, decoding goes on. */
  tu_decode (&r, F_SERVER, 0, h, hl, hl, 0);
  ck_assert_uint_eq (r.count, 0);
  ck_assert_uint_eq (r.consumed, hl);
  ck_assert_int_eq (r.validity, V_VALID);
  ck_assert_uint_lt (tu_alloc_largest, 4096); /* the stream alone */
  tu_result_free (&r);

#if SIZE_MAX > 0x7FFFFFFFFFFFFFFF
  /* The largest limit admits the largest length... */
  tu_alloc_reset ();
  tu_decode (&r, F_SERVER, (size_t) MAX63, h, hl, hl, 1);
  ck_assert_uint_eq (r.count, 0);
  ck_assert_int_eq (r.validity, V_VALID);
  tu_result_free (&r);
  /* ...and one less does not, once the length field is consumed. */
  tu_decode_every_split (&r, F_SERVER | F_CLOSE, (size_t) MAX63 - 1, h, hl);
  ck_assert_uint_eq (r.count, 1);
  ck_assert_int_eq (r.ev[0].status, ST_MAX);
  ck_assert_uint_eq (r.ev[0].offset, 10);
  tu_result_free (&r);
#endif

  /* A 16 MiB limit: 1009 at once, and the close frame is all that was
     allocated besides the stream. */
  tu_alloc_reset ();
  tu_decode (&r, F_SERVER | F_CLOSE, 16u << 20, h, hl, 1, 1);
  ck_assert_uint_eq (r.count, 1);
  ck_assert_int_eq (r.ev[0].status, ST_MAX);
  ck_assert_uint_eq (r.ev[0].offset, 10);
  ck_assert_uint_eq (r.ev[0].len, 4);
  ck_assert_mem_eq (r.ev[0].payload, "\x88\x02\x03\xf1", 4);
  ck_assert_uint_lt (tu_alloc_largest, 4096);
  tu_result_free (&r);
}
END_TEST

/* The top bit of a 64-bit length is refused once the whole length field
   is consumed (as the original did), whatever the limit (2^63 and 2^64-1 must not wrap to something small). */
START_TEST (test_decode_top_bit_lengths)
{
  static const uint64_t lens[] = { UINT64_C (0x8000000000000000),
                                   UINT64_C (0x8000000000000001),
                                   UINT64_C (0xFFFFFFFFFFFFFFFF) };
  static const size_t limits[] = { 0, 1, 16u << 20,
                                   SIZE_MAX > MAX63 ? (size_t) MAX63
                                                    : SIZE_MAX };
  size_t i;
  size_t j;
  for (i = 0; i < 3; i++)
    for (j = 0; j < 4; j++)
    {
      unsigned char h[14];
      size_t hl = header64 (h, 0x81, lens[i], 1);
      struct tu_result r;
      tu_decode_every_split (&r, F_SERVER | F_CLOSE, limits[j], h, hl);
      ck_assert_uint_eq (r.count, 1);
      ck_assert_int_eq (r.ev[0].status, ST_PROTO);
      ck_assert_uint_eq (r.ev[0].offset, 10);
      ck_assert_uint_eq (r.ev[0].len, 4);
      ck_assert_mem_eq (r.ev[0].payload, "\x88\x02\x03\xea", 4);
      tu_result_free (&r);
    }
}
END_TEST

/* A continuation adds its length to what is buffered: 10 buffered bytes
   plus an announced 2^63-1 must be compared as 2^63+9, not wrapped. */
START_TEST (test_decode_continuation_sum_does_not_wrap)
{
  unsigned char in[64];
  unsigned char payload[10] = "0123456789";
  size_t n = tu_frame (in, 0x01, payload, 10, MK); /* text, no FIN */
  struct tu_result r;

  n += header64 (in + n, 0x00, MAX63, 1);
#if SIZE_MAX > 0x7FFFFFFFFFFFFFFF
  tu_decode_every_split (&r, F_SERVER, (size_t) MAX63, in, n);
  ck_assert_uint_eq (r.count, 1);
  ck_assert_int_eq (r.ev[0].status, ST_MAX);
  /* It fits alone, not with the buffered bytes: the whole header,
     masking key included, is consumed first. */
  ck_assert_uint_eq (r.ev[0].offset, n);
  tu_result_free (&r);
  /* Without a limit the sum is a size the decoder can hold (64-bit):
     accepted, and nothing is allocated for it. */
  tu_alloc_reset ();
  tu_decode (&r, F_SERVER, 0, in, n, n, 0);
  ck_assert_uint_eq (r.count, 0);
  ck_assert_int_eq (r.validity, V_VALID);
  ck_assert_uint_le (tu_alloc_largest, 2 * n + 65536);
  tu_result_free (&r);
#else
  /* 32-bit: a message that could never be buffered is too big. */
  tu_decode_every_split (&r, F_SERVER, 0, in, n);
  ck_assert_uint_eq (r.count, 1);
  ck_assert_int_eq (r.ev[0].status, ST_MAX);
  tu_result_free (&r);
#endif
}
END_TEST

/* With WANT_FRAGMENTS the start of a character cut by a fragment boundary
   is held back and sent with the next fragment: it counts against the
   limit, so no payload handed out is ever larger than max. */
START_TEST (test_decode_held_bytes_count_against_limit)
{
  static const unsigned char first[3] = { 'a', 'b', 0xE2 };
  static const unsigned char fits[2] = { 0x82, 0xAC };
  static const unsigned char over[3] = { 0x82, 0xAC, 'x' };
  unsigned char in[64];
  size_t n;
  struct tu_result r;

  n = tu_frame (in, 0x01, first, 3, MK);
  n += tu_frame (in + n, 0x80, fits, 2, MK);
  tu_decode_every_split (&r, F_SERVER | F_FRAGS, 3, in, n);
  ck_assert_uint_eq (r.count, 2);
  ck_assert_int_eq (r.ev[0].status, MHD_WEBSOCKET_STATUS_TEXT_FIRST_FRAGMENT);
  ck_assert_uint_eq (r.ev[0].len, 2);
  ck_assert_int_eq (r.ev[1].status, MHD_WEBSOCKET_STATUS_TEXT_LAST_FRAGMENT);
  ck_assert_uint_eq (r.ev[1].len, 3);
  ck_assert_mem_eq (r.ev[1].payload, "\xE2\x82\xAC", 3);
  tu_result_free (&r);

  n = tu_frame (in, 0x01, first, 3, MK);
  n += tu_frame (in + n, 0x80, over, 3, MK);
  tu_decode_every_split (&r, F_SERVER | F_FRAGS, 3, in, n);
  ck_assert_uint_eq (r.count, 2);
  ck_assert_int_eq (r.ev[1].status, ST_MAX);
  /* The second frame fits alone, not with the held byte: its whole
     header (masked, 7-bit length) is consumed first. */
  ck_assert_uint_eq (r.ev[1].offset, 2 + 4 + 3 + 2 + 4);
  tu_result_free (&r);
}
END_TEST

/* Growth of the message buffer is bounded by the bytes that arrived, also
   for a frame announcing 2^63-1 fed in uneven pieces. */
START_TEST (test_decode_growth_bounded_by_arrivals)
{
  static unsigned char data[300000];
  unsigned char h[14];
  size_t hl = header64 (h, 0x02, MAX63, 0); /* binary, no FIN, client */
  struct MHD_WebSocketStream *ws = tu_stream (F_CLIENT, 0);
  size_t received = hl;
  size_t pos = 0;
  size_t step = 1;
  size_t rd;
  char *payload;
  size_t plen;

  memset (data, 'q', sizeof (data));
  ck_assert_int_eq (
    MHD_websocket_decode (ws, (const char *) h, hl, &rd, &payload, &plen),
    ST_OK);
  ck_assert_uint_eq (rd, hl);
  while (pos < sizeof (data))
  {
    size_t n = sizeof (data) - pos < step ? sizeof (data) - pos : step;
    ck_assert_int_eq (MHD_websocket_decode (ws, (const char *) data + pos, n,
                                            &rd, &payload, &plen),
                      ST_OK);
    ck_assert_uint_eq (rd, n);
    pos += n;
    received += n;
    ck_assert_uint_le (tu_alloc_largest, 2 * received + 65536);
    ck_assert_int_le (tu_alloc_live, 2); /* the stream and one buffer */
    step = step * 3 + 1;
  }
  tu_stream_end (ws);
}
END_TEST

#ifdef HAVE_MMAP_FENCE
/* Feeds @a in (whole, and one byte per call) to a stream whose every
   allocation ends at a fence; the events must match @a expect_status and
   the last payload @a expect. */
static void
fenced_decode (int flags, size_t max, const unsigned char *in, size_t n,
               int expect_status, const unsigned char *expect,
               size_t expect_len)
{
  int pass;
  for (pass = 0; pass < 2; pass++)
  {
    struct MHD_WebSocketStream *ws;
    unsigned rng_state = 3;
    size_t pos = 0;
    int last = ST_OK;
    unsigned char *got = NULL;
    size_t got_len = 0;

    ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, flags, max, fence_malloc,
                                                  fence_realloc, fence_free,
                                                  &rng_state, tu_rng),
                      ST_OK);
    while (pos < n)
    {
      size_t chunk = pass ? 1 : n - pos;
      size_t rd;
      char *payload;
      size_t plen;
      int st = MHD_websocket_decode (ws, (const char *) in + pos, chunk, &rd,
                                     &payload, &plen);
      pos += rd;
      if (ST_OK != st)
      {
        last = st;
        if (NULL != payload)
        {
          /* The NUL after the payload is inside the block. */
          ck_assert_int_eq (payload[plen], 0);
          if (st > 0)
          {
            free (got);
            got = malloc (plen + 1);
            memcpy (got, payload, plen);
            got_len = plen;
          }
          MHD_websocket_free (ws, payload);
        }
        if (st < 0)
          break;
      }
      else if (0 == rd)
        break;
    }
    ck_assert_int_eq (last, expect_status);
    if (NULL != expect)
    {
      ck_assert_uint_eq (got_len, expect_len);
      if (0 != expect_len)
        ck_assert_mem_eq (got, expect, expect_len);
    }
    free (got);
    ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
    ck_assert_int_eq (fence_live, 0);
  }
}
#endif

/* Every buffer the decoder fills (payloads of all header sizes, messages
   reassembled from uneven fragments, held-back UTF-8, control frames) is
   written strictly inside what it asked the allocator for, NUL included. */
START_TEST (test_decode_writes_stay_inside_allocations)
{
#ifdef HAVE_MMAP_FENCE
  static const size_t sizes[] = { 0,  1,   7,   8,     9,     31,    32,
                                  33, 125, 126, 65535, 65536, 200001 };
  size_t total = 0;
  size_t i;
  unsigned char *buf = malloc (2 * 200001 + 4096);
  unsigned char *msg = malloc (200001 * 2);
  ck_assert_ptr_nonnull (buf);
  ck_assert_ptr_nonnull (msg);
  for (i = 0; i < 200001 * 2; i++)
    msg[i] = (unsigned char) ("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"[i % 10]);

  for (i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++)
  {
    size_t s = sizes[i];
    size_t n;
    /* One frame, server and client side. */
    n = tu_frame (buf, 0x82, msg, s, MK);
    fenced_decode (F_SERVER, 0, buf, n, ST_BIN, msg, s);
    n = tu_frame (buf, 0x82, msg, s, NULL);
    fenced_decode (F_CLIENT, 0, buf, n, ST_BIN, msg, s);
    total += s;
  }
  /* A text message of 10-byte character groups in fragments of odd sizes
     that cut characters, reassembled and as fragments. */
  {
    /* 74376 bytes in all: the message ends on a character boundary
       (the pattern's boundaries are at 0, 1, 3 and 6 modulo 10). */
    static const size_t frag[] = { 3, 1, 17, 250, 1, 4093, 9, 70002 };
    size_t n = 0;
    size_t off = 0;
    size_t k;
    size_t count = sizeof (frag) / sizeof (frag[0]);
    for (k = 0; k < count; k++)
    {
      unsigned b0 = (0 == k ? 0x01 : 0x00) | (k + 1 == count ? 0x80 : 0);
      n += tu_frame (buf + n, b0, msg + off, frag[k], MK);
      off += frag[k];
    }
    fenced_decode (F_SERVER, 0, buf, n, ST_TEXT, msg, off);
    fenced_decode (F_SERVER | F_FRAGS, 0, buf, n,
                   MHD_WEBSOCKET_STATUS_TEXT_LAST_FRAGMENT, NULL, 0);
  }
  /* Control frames, including a close with a reason, and an error that
     generates a (masked) close frame. */
  {
    unsigned char close_pl[125];
    size_t n;
    close_pl[0] = 0x03;
    close_pl[1] = 0xE8;
    memcpy (close_pl + 2, msg, 123); /* cuts no character: 123 = 12*10+3 */
    n = tu_frame (buf, 0x89, msg, 125, MK);
    fenced_decode (F_SERVER, 0, buf, n, MHD_WEBSOCKET_STATUS_PING_FRAME, msg,
                   125);
    n = tu_frame (buf, 0x88, close_pl, 125, NULL);
    fenced_decode (F_CLIENT, 0, buf, n, MHD_WEBSOCKET_STATUS_CLOSE_FRAME,
                   close_pl, 125);
    n = header64 (buf, 0x82, MAX63, 0);
    fenced_decode (F_CLIENT | F_CLOSE, 16, buf, n, ST_MAX, NULL, 0);
  }
  ck_assert_uint_gt (total, 0);
  free (buf);
  free (msg);
#endif
}
END_TEST

/* Every frame the encoders build is written inside frame_len + 1 bytes
   (the allocation ends at a fence), for lengths around each header-size
   boundary and every masking phase. */
START_TEST (test_encode_writes_stay_inside_allocations)
{
#ifdef HAVE_MMAP_FENCE
  static const size_t sizes[] = { 0,   1,   3,     4,     5,     7,    8,
                                  9,   31,  32,    33,    124,   125,  126,
                                  127, 128, 65535, 65536, 65537, 70001 };
  unsigned char *p = malloc (70001);
  unsigned rng_state = 9;
  size_t i;
  int mode;
  ck_assert_ptr_nonnull (p);
  memset (p, 'z', 70001);
  for (mode = 0; mode < 2; mode++)
  {
    struct MHD_WebSocketStream *ws;
    ck_assert_int_eq (MHD_websocket_stream_init2 (
                        &ws, mode ? F_CLIENT : F_SERVER, 0, fence_malloc,
                        fence_realloc, fence_free, &rng_state, tu_rng),
                      ST_OK);
    for (i = 0; i < sizeof (sizes) / sizeof (sizes[0]); i++)
    {
      char *frame;
      size_t frame_len;
      size_t hs = (sizes[i] > 65535 ? 10
                   : sizes[i] > 125 ? 4
                                    : 2)
                  + (mode ? 4 : 0);
      ck_assert_int_eq (MHD_websocket_encode_binary (
                          ws, (const char *) p, sizes[i],
                          MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame, &frame_len),
                        ST_OK);
      ck_assert_uint_eq (frame_len, hs + sizes[i]);
      ck_assert_int_eq (frame[frame_len], 0);
      MHD_websocket_free (ws, frame);
      ck_assert_int_eq (
        MHD_websocket_encode_text (ws, (const char *) p, sizes[i],
                                   MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame,
                                   &frame_len, NULL),
        ST_OK);
      ck_assert_uint_eq (frame_len, hs + sizes[i]);
      MHD_websocket_free (ws, frame);
      if (sizes[i] <= 125)
      {
        ck_assert_int_eq (MHD_websocket_encode_ping (
                            ws, (const char *) p, sizes[i], &frame, &frame_len),
                          ST_OK);
        MHD_websocket_free (ws, frame);
      }
      if (sizes[i] <= 123)
      {
        ck_assert_int_eq (
          MHD_websocket_encode_close (ws, 1000, (const char *) p, sizes[i],
                                      &frame, &frame_len),
          ST_OK);
        ck_assert_uint_eq (frame_len, (mode ? 4 : 0) + 2 + 2 + sizes[i]);
        MHD_websocket_free (ws, frame);
      }
    }
    ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
    ck_assert_int_eq (fence_live, 0);
  }
  free (p);
#endif
}
END_TEST

/* The decoder's input may end anywhere: a frame (or a piece of one) that
   ends right at an inaccessible page is parsed and unmasked without a
   read past its last byte, for every length up to a few words and every
   split. */
START_TEST (test_decode_input_ending_at_fence)
{
  unsigned char frame[300];
  unsigned char text[200];
  struct tu_fence f;
  size_t len;
  size_t i;

  for (i = 0; i < sizeof (text); i++)
    text[i] = (unsigned char) ("ab\xC3\xA9"
                               "cd\xE2\x82\xAC"[i % 9]);
  tu_fence_init (&f, sizeof (frame));
  for (len = 0; len <= 130; len++)
  {
    /* Text when the pattern ends on a character boundary (9-byte groups),
       binary otherwise, so that every length goes through unmasking. */
    int is_text = 0 == len % 9;
    size_t tl = len;
    int masked;
    for (masked = 0; masked < 2; masked++)
    {
      size_t n =
        tu_frame (frame, is_text ? 0x81 : 0x82, text, tl, masked ? MK : NULL);
      size_t cut;
      for (cut = 1; cut <= n; cut += (n > 40 ? 7 : 1))
      {
        /* The first `cut` bytes, ending at the fence, then the rest. */
        struct MHD_WebSocketStream *ws =
          tu_stream (masked ? F_SERVER : F_CLIENT, 0);
        unsigned char *a = tu_fence_place (&f, cut, 1);
        size_t rd;
        char *payload;
        size_t plen;
        int st;
        memcpy (a, frame, cut);
        st = MHD_websocket_decode (ws, (const char *) a, cut, &rd, &payload,
                                   &plen);
        if (cut < n)
        {
          ck_assert_int_eq (st, ST_OK);
          ck_assert_uint_eq (rd, cut);
          a = tu_fence_place (&f, n - cut, 1);
          memcpy (a, frame + cut, n - cut);
          st = MHD_websocket_decode (ws, (const char *) a, n - cut, &rd,
                                     &payload, &plen);
        }
        ck_assert_int_eq (st, is_text ? ST_TEXT : ST_BIN);
        ck_assert_uint_eq (plen, tl);
        if (0 != tl)
          ck_assert_mem_eq (payload, text, tl);
        MHD_websocket_free (ws, payload);
        tu_stream_end (ws);
      }
    }
  }
  tu_fence_free (&f);
}
END_TEST

/* ------------------------------------------------------------ handshake */

/* The accept value goes into exactly 29 bytes (28 and the NUL); the key
   is read up to its NUL and no further, also with surrounding blanks. */
START_TEST (test_accept_header_exact_buffers)
{
  static const char *keys[] = { "dGhlIHNhbXBsZSBub25jZQ==",
                                " \tdGhlIHNhbXBsZSBub25jZQ== \t", "", " ",
                                "dGhlIHNhbXBsZSBub25jZQ=" };
  static const int ok[] = { 1, 1, 0, 0, 0 };
  struct tu_fence fk;
  struct tu_fence fo;
  size_t i;
  tu_fence_init (&fk, 64);
  tu_fence_init (&fo, 29);
  for (i = 0; i < sizeof (keys) / sizeof (keys[0]); i++)
  {
    size_t kl = strlen (keys[i]) + 1;
    char *k = (char *) tu_fence_place (&fk, kl, 1);
    char *out = (char *) tu_fence_place (&fo, 29, 1);
    memcpy (k, keys[i], kl);
    memset (out, 'X', 29);
    if (ok[i])
    {
      ck_assert_int_eq (MHD_websocket_create_accept_header (k, out), ST_OK);
      ck_assert_str_eq (out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
    else
      ck_assert_int_eq (MHD_websocket_create_accept_header (k, out),
                        MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER);
  }
  tu_fence_free (&fk);
  tu_fence_free (&fo);
}
END_TEST

/* Header values that end (with their NUL) at a fence, cut at every
   length: the checks read nothing past the NUL. */
START_TEST (test_header_checks_read_to_nul_only)
{
  static const char *values[] = { "HTTP/1.1",  "HTTP/10.01",
                                  "Upgrade",   "keep-alive, Upgrade",
                                  "websocket", "websocket/13, h2c",
                                  "13" };
  struct tu_fence f;
  size_t i;
  tu_fence_init (&f, 64);
  for (i = 0; i < sizeof (values) / sizeof (values[0]); i++)
  {
    size_t full = strlen (values[i]);
    size_t l;
    for (l = 0; l <= full; l++)
    {
      char *v = (char *) tu_fence_place (&f, l + 1, 1);
      memcpy (v, values[i], l);
      v[l] = '\0';
      /* Only the verdicts of whole values are known here; the cut ones
         must simply be read safely (and be refused or accepted). */
      (void) MHD_websocket_check_http_version (v);
      (void) MHD_websocket_check_connection_header (v);
      (void) MHD_websocket_check_upgrade_header (v);
      (void) MHD_websocket_check_version_header (v);
    }
  }
  ck_assert_int_eq (MHD_websocket_check_http_version (
                      strcpy ((char *) tu_fence_place (&f, 9, 1), "HTTP/1.1")),
                    ST_OK);
  ck_assert_int_eq (MHD_websocket_check_http_version (
                      strcpy ((char *) tu_fence_place (&f, 8, 1), "HTTP/1.")),
                    MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER);
  ck_assert_int_eq (MHD_websocket_check_upgrade_header (strcpy (
                      (char *) tu_fence_place (&f, 11, 1), "websocket/")),
                    MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER);
  tu_fence_free (&f);
}
END_TEST

/* split_close_reason points into the caller's payload and never past it,
   for lengths 2..125 ending at a fence; lengths near SIZE_MAX are
   refused without a read. */
START_TEST (test_split_close_reason_bounds)
{
  struct tu_fence f;
  size_t len;
  unsigned short code;
  const char *reason;
  size_t reason_len;
  tu_fence_init (&f, 125);
  for (len = 2; len <= 125; len++)
  {
    char *p = (char *) tu_fence_place (&f, len, 1);
    memset (p, 'r', len);
    p[0] = 0x0F;
    p[1] = (char) 0xA0;
    ck_assert_int_eq (
      MHD_websocket_split_close_reason (p, len, &code, &reason, &reason_len),
      ST_OK);
    ck_assert_uint_eq (code, 4000);
    ck_assert_uint_eq (reason_len, len - 2);
    if (len > 2)
      ck_assert_ptr_eq (reason, p + 2);
  }
  ck_assert_int_eq (
    MHD_websocket_split_close_reason ((const char *) tu_fence_place (&f, 1, 1),
                                      SIZE_MAX, &code, &reason, &reason_len),
    ST_MAX);
  ck_assert_ptr_null (reason);
  tu_fence_free (&f);
}
END_TEST

/* ------------------------------------------------------------ stream */

/* The limit itself: 2^63-1 is the largest accepted; above is a
   PARAMETER_ERROR that leaves *ws NULL (on 64-bit size_t). */
START_TEST (test_stream_limit_range)
{
  struct MHD_WebSocketStream *ws = (struct MHD_WebSocketStream *) 1;
#if SIZE_MAX > 0x7FFFFFFFFFFFFFFF
  ck_assert_int_eq (MHD_websocket_stream_init (&ws, F_SERVER, (size_t) MAX63),
                    ST_OK);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  ws = (struct MHD_WebSocketStream *) 1;
  ck_assert_int_eq (
    MHD_websocket_stream_init (&ws, F_SERVER, (size_t) MAX63 + 1), ST_PARAM);
  ck_assert_ptr_null (ws);
  ws = (struct MHD_WebSocketStream *) 1;
  ck_assert_int_eq (MHD_websocket_stream_init (&ws, F_SERVER, SIZE_MAX),
                    ST_PARAM);
  ck_assert_ptr_null (ws);
#else
  ck_assert_int_eq (MHD_websocket_stream_init (&ws, F_SERVER, SIZE_MAX), ST_OK);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
#endif
}
END_TEST

static Suite *
limits_suite (void)
{
  Suite *s = suite_create ("limits");
  TCase *tc;

  tc = tcase_create ("encode");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_encode_lengths_above_63_bits_refused_untouched);
  tcase_add_test (tc, test_encode_control_lengths_near_size_max);
  tcase_add_test (tc, test_encode_max_length_asks_exact_size);
  tcase_add_test (tc, test_encode_writes_stay_inside_allocations);
  suite_add_tcase (s, tc);

  tc = tcase_create ("decode");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_decode_max_length_against_limits);
  tcase_add_test (tc, test_decode_top_bit_lengths);
  tcase_add_test (tc, test_decode_continuation_sum_does_not_wrap);
  tcase_add_test (tc, test_decode_held_bytes_count_against_limit);
  tcase_add_test (tc, test_decode_growth_bounded_by_arrivals);
  tcase_add_test (tc, test_decode_writes_stay_inside_allocations);
  tcase_add_test (tc, test_decode_input_ending_at_fence);
  suite_add_tcase (s, tc);

  tc = tcase_create ("handshake and close");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_accept_header_exact_buffers);
  tcase_add_test (tc, test_header_checks_read_to_nul_only);
  tcase_add_test (tc, test_split_close_reason_bounds);
  tcase_add_test (tc, test_stream_limit_range);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (limits_suite ());
  int failed;
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (failed > 0) ? EXIT_FAILURE : EXIT_SUCCESS;
}
