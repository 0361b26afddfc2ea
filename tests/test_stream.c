/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_stream.c
 * @brief Check suite for the stream module (contract section 3,
 *        "Lifecycle"): init and its parameter checks, validity, the
 *        allocator helpers, that every buffer goes through the callbacks,
 *        memory failures during decoding, and one thread decoding while
 *        another encodes.
 */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include "microhttpd_ws.h"
#include "testutil.h"

#define ST_OK MHD_WEBSOCKET_STATUS_OK
#define ST_PARAM MHD_WEBSOCKET_STATUS_PARAMETER_ERROR
#define ST_MEM MHD_WEBSOCKET_STATUS_MEMORY_ERROR

#define FL_SERVER MHD_WEBSOCKET_FLAG_SERVER
#define FL_CLIENT MHD_WEBSOCKET_FLAG_CLIENT
#define FL_WANT MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS
#define FL_CLOSE MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR

/** A pointer value no successful call returns: shows *ws was reset. */
#define SENTINEL ((struct MHD_WebSocketStream *) (uintptr_t) 0x10)

static const uint8_t key[4] = { 0x3C, 0xA5, 0x0F, 0x96 };

static void
setup (void)
{
  tu_alloc_reset ();
}

/** A malloc callback that always fails. */
static void *
null_malloc (size_t len)
{
  (void) len;
  return NULL;
}

/** A growable byte buffer for building inputs. */
struct buf
{
  char *data;
  size_t len;
  size_t cap;
};

static void
buf_reserve (struct buf *b, size_t more)
{
  if (b->len + more > b->cap)
  {
    size_t cap = (b->cap + more) * 2 + 64;
    char *n = realloc (b->data, cap);
    ck_assert_ptr_nonnull (n);
    b->data = n;
    b->cap = cap;
  }
}

/** Appends a frame (masked when @a masked) made by tu_frame. */
static void
buf_frame (struct buf *b, unsigned b0, const void *p, size_t len, int masked)
{
  buf_reserve (b, len + 14);
  b->len += tu_frame (b->data + b->len, b0, p, len, masked ? key : NULL);
}

/** Feeds all of @a len bytes and expects OK with nothing completed. */
static void
feed_ok (struct MHD_WebSocketStream *ws, const char *in, size_t len)
{
  size_t rd = 99;
  char *p = (char *) 1;
  size_t pl = 99;
  ck_assert_int_eq (MHD_websocket_decode (ws, in, len, &rd, &p, &pl), ST_OK);
  ck_assert_uint_eq (rd, len);
  ck_assert_ptr_null (p);
  ck_assert_uint_eq (pl, 0);
}

/* ------------------------------------------------------------ init */

START_TEST (test_init_server_ok)
{
  struct MHD_WebSocketStream *ws = SENTINEL;
  ck_assert_int_eq (MHD_websocket_stream_init (&ws, FL_SERVER, 0), ST_OK);
  ck_assert_ptr_nonnull (ws);
  ck_assert_ptr_ne (ws, SENTINEL);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_VALID);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
}
END_TEST

START_TEST (test_init_server_all_flags_ok)
{
  struct MHD_WebSocketStream *ws = SENTINEL;
  ck_assert_int_eq (
    MHD_websocket_stream_init (&ws, FL_SERVER | FL_WANT | FL_CLOSE, 1000),
    ST_OK);
  ck_assert_ptr_nonnull (ws);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_VALID);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
}
END_TEST

START_TEST (test_init2_client_with_rng_ok)
{
  static const int flags[] = { FL_CLIENT, FL_CLIENT | FL_WANT,
                               FL_CLIENT | FL_WANT | FL_CLOSE };
  size_t i;
  for (i = 0; i < sizeof (flags) / sizeof (flags[0]); i++)
  {
    struct MHD_WebSocketStream *ws = SENTINEL;
    unsigned counter = 0;
    ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, flags[i], 0, tu_malloc,
                                                  tu_realloc, tu_free, &counter,
                                                  tu_rng),
                      ST_OK);
    ck_assert_ptr_nonnull (ws);
    ck_assert_ptr_ne (ws, SENTINEL);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                      MHD_WEBSOCKET_VALIDITY_VALID);
    tu_stream_end (ws);
  }
}
END_TEST

START_TEST (test_init2_server_without_rng_ok)
{
  struct MHD_WebSocketStream *ws = SENTINEL;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, FL_SERVER | FL_WANT, 0,
                                                tu_malloc, tu_realloc, tu_free,
                                                NULL, NULL),
                    ST_OK);
  ck_assert_ptr_nonnull (ws);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_init_null_ws_is_parameter_error)
{
  ck_assert_int_eq (MHD_websocket_stream_init (NULL, FL_SERVER, 0), ST_PARAM);
  ck_assert_int_eq (MHD_websocket_stream_init2 (NULL, FL_SERVER, 0, tu_malloc,
                                                tu_realloc, tu_free, NULL,
                                                tu_rng),
                    ST_PARAM);
  ck_assert_int_eq (tu_alloc_live, 0);
}
END_TEST

/**
 * Asserts that both MHD_websocket_stream_init and
 * MHD_websocket_stream_init2 (with @a rng) reject @a flags and @a max
 * with a parameter error and set the stream pointer to NULL.
 */
static void
expect_init_param_error (int flags, size_t max,
                         MHD_WebSocketRandomNumberGenerator rng)
{
  struct MHD_WebSocketStream *ws = SENTINEL;
  ck_assert_msg (ST_PARAM == MHD_websocket_stream_init (&ws, flags, max),
                 "init flags %#x max %zu", (unsigned) flags, max);
  ck_assert_ptr_null (ws);
  ws = SENTINEL;
  ck_assert_msg (ST_PARAM
                   == MHD_websocket_stream_init2 (&ws, flags, max, tu_malloc,
                                                  tu_realloc, tu_free, NULL,
                                                  rng),
                 "init2 flags %#x max %zu", (unsigned) flags, max);
  ck_assert_ptr_null (ws);
}

START_TEST (test_init_unknown_flag_bit_is_parameter_error)
{
  static const int bad[] = { 8,       16, 8 | FL_WANT, 0x100, (int) 0x40000000,
                             INT_MIN, -1 };
  size_t i;
  for (i = 0; i < sizeof (bad) / sizeof (bad[0]); i++)
    expect_init_param_error (bad[i], 0, tu_rng);
  ck_assert_int_eq (tu_alloc_live, 0);
}
END_TEST

START_TEST (test_init2_null_callbacks_are_parameter_error)
{
  struct MHD_WebSocketStream *ws = SENTINEL;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, FL_SERVER, 0, NULL,
                                                tu_realloc, tu_free, NULL,
                                                tu_rng),
                    ST_PARAM);
  ck_assert_ptr_null (ws);
  ws = SENTINEL;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, FL_SERVER, 0, tu_malloc,
                                                NULL, tu_free, NULL, tu_rng),
                    ST_PARAM);
  ck_assert_ptr_null (ws);
  ws = SENTINEL;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, FL_SERVER, 0, tu_malloc,
                                                tu_realloc, NULL, NULL, tu_rng),
                    ST_PARAM);
  ck_assert_ptr_null (ws);
  ck_assert_int_eq (tu_alloc_live, 0);
}
END_TEST

START_TEST (test_client_without_rng_is_parameter_error)
{
  static const int flags[] = { FL_CLIENT, FL_CLIENT | FL_WANT,
                               FL_CLIENT | FL_WANT | FL_CLOSE };
  size_t i;
  for (i = 0; i < sizeof (flags) / sizeof (flags[0]); i++)
    expect_init_param_error (flags[i], 0, NULL);
  ck_assert_int_eq (tu_alloc_live, 0);
}
END_TEST

#if SIZE_MAX > 0x7FFFFFFFFFFFFFFF
START_TEST (test_max_above_2p63_is_parameter_error)
{
  size_t bad[2];
  size_t i;
  bad[0] = (size_t) 0x8000000000000000;
  bad[1] = SIZE_MAX;
  for (i = 0; i < 2; i++)
    expect_init_param_error (FL_SERVER, bad[i], tu_rng);
  ck_assert_int_eq (tu_alloc_live, 0);
}
END_TEST

START_TEST (test_max_2p63_minus_1_accepted)
{
  struct MHD_WebSocketStream *ws = NULL;
  ck_assert_int_eq (
    MHD_websocket_stream_init (&ws, FL_SERVER, (size_t) 0x7FFFFFFFFFFFFFFF),
    ST_OK);
  ck_assert_ptr_nonnull (ws);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  ws = NULL;
  ck_assert_int_eq (
    MHD_websocket_stream_init2 (&ws, FL_CLIENT, (size_t) 0x7FFFFFFFFFFFFFFF,
                                tu_malloc, tu_realloc, tu_free, NULL, tu_rng),
    ST_OK);
  ck_assert_ptr_nonnull (ws);
  tu_stream_end (ws);
}
END_TEST
#endif

/* max 0 is "no limit": a 70000-byte frame passes. */
START_TEST (test_max_zero_means_no_limit)
{
  struct MHD_WebSocketStream *ws = NULL;
  struct buf in = { NULL, 0, 0 };
  char *msg = malloc (70000);
  size_t rd = 0;
  char *p = NULL;
  size_t pl = 0;
  ck_assert_ptr_nonnull (msg);
  memset (msg, 0x5A, 70000);
  buf_frame (&in, 0x82, msg, 70000, 1);
  ck_assert_int_eq (MHD_websocket_stream_init (&ws, FL_SERVER, 0), ST_OK);
  ck_assert_int_eq (MHD_websocket_decode (ws, in.data, in.len, &rd, &p, &pl),
                    MHD_WEBSOCKET_STATUS_BINARY_FRAME);
  ck_assert_uint_eq (rd, in.len);
  ck_assert_uint_eq (pl, 70000);
  ck_assert_mem_eq (p, msg, 70000);
  MHD_websocket_free (ws, p);
  MHD_websocket_stream_free (ws);
  free (msg);
  free (in.data);
}
END_TEST

/* The stream object comes from the C library's malloc, as in the
   original: a stream can be created while the callbacks refuse memory,
   and used once they work again.  Nothing of it goes through them. */
START_TEST (test_init2_stream_not_from_callbacks)
{
  struct MHD_WebSocketStream *ws = SENTINEL;
  struct buf in = { NULL, 0, 0 };
  size_t rd = 0;
  char *p = NULL;
  size_t pl = 0;
  char *frame = NULL;
  size_t frame_len = 0;

  /* A malloc callback that never works does not stop init... */
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, FL_SERVER, 0, null_malloc,
                                                tu_realloc, tu_free, NULL,
                                                NULL),
                    ST_OK);
  ck_assert_ptr_nonnull (ws);
  ck_assert_ptr_ne (ws, SENTINEL);
  /* ...and freeing calls no free callback (tu_free would assert). */
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);

  /* Callbacks that refuse every request: no call at all. */
  ws = SENTINEL;
  tu_alloc_fail_at = tu_alloc_calls;
  tu_alloc_fail_sticky = 1;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, FL_CLIENT | FL_CLOSE, 10,
                                                tu_malloc, tu_realloc, tu_free,
                                                NULL, tu_rng),
                    ST_OK);
  ck_assert_ptr_nonnull (ws);
  ck_assert_int_eq (tu_alloc_calls, 0);
  ck_assert_int_eq (tu_alloc_live, 0);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_VALID);

  /* Used while they still refuse: a MEMORY_ERROR that leaves the
     stream usable and the input to be fed again. */
  buf_frame (&in, 0x82, "abc", 3, 0);
  ck_assert_int_eq (MHD_websocket_decode (ws, in.data, in.len, &rd, &p, &pl),
                    ST_MEM);
  ck_assert_ptr_null (p);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_VALID);
  ck_assert_int_eq (
    MHD_websocket_encode_binary (ws, "x", 1, 0, &frame, &frame_len), ST_MEM);
  ck_assert_ptr_null (frame);

  /* Once they work, everything goes through them. */
  tu_alloc_fail_at = -1;
  tu_alloc_fail_sticky = 0;
  ck_assert_int_eq (
    MHD_websocket_decode (ws, in.data + rd, in.len - rd, &rd, &p, &pl),
    MHD_WEBSOCKET_STATUS_BINARY_FRAME);
  ck_assert_uint_eq (pl, 3);
  ck_assert_mem_eq (p, "abc", 3);
  ck_assert_int_eq (tu_alloc_live, 1);
  ck_assert_int_eq (MHD_websocket_free (ws, p), ST_OK);
  ck_assert_int_eq (
    MHD_websocket_encode_binary (ws, "x", 1, 0, &frame, &frame_len), ST_OK);
  ck_assert_uint_eq (frame_len, 2 + 4 + 1);
  ck_assert_int_eq (tu_alloc_live, 1);
  ck_assert_int_eq (MHD_websocket_free (ws, frame), ST_OK);
  /* A message left half-assembled is released by stream_free, through
     the callbacks, and nothing they allocated remains. */
  in.len = 0;
  buf_frame (&in, 0x02, "0123", 4, 0);
  ck_assert_int_eq (MHD_websocket_decode (ws, in.data, in.len, &rd, &p, &pl),
                    ST_OK);
  ck_assert_int_eq (tu_alloc_live, 1);
  tu_stream_end (ws);
  free (in.data);
}
END_TEST

/* stream_init: the C library's allocator all along; the stream works. */
START_TEST (test_init_with_libc_allocator_works)
{
  struct MHD_WebSocketStream *ws = SENTINEL;
  char *frame = NULL;
  size_t frame_len = 0;
  ck_assert_int_eq (MHD_websocket_stream_init (&ws, FL_SERVER, 0), ST_OK);
  ck_assert_int_eq (
    MHD_websocket_encode_text (ws, "hi", 2, 0, &frame, &frame_len, NULL),
    ST_OK);
  ck_assert_uint_eq (frame_len, 4);
  ck_assert_int_eq (MHD_websocket_free (ws, frame), ST_OK);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  ck_assert_int_eq (tu_alloc_live, 0);
  ck_assert_int_eq (tu_alloc_calls, 0);
}
END_TEST

/* ------------------------------------------------------------ validity */

START_TEST (test_new_stream_is_valid)
{
  struct MHD_WebSocketStream *ws = tu_stream (FL_SERVER, 0);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_VALID);
  MHD_websocket_stream_free (ws);
  ws = tu_stream (FL_CLIENT | FL_WANT, 100);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_VALID);
  MHD_websocket_stream_free (ws);
  ck_assert_int_eq (tu_alloc_live, 0);
}
END_TEST

START_TEST (test_null_stream_calls)
{
  ck_assert_int_eq (MHD_websocket_stream_free (NULL), ST_PARAM);
  ck_assert_int_eq (MHD_websocket_stream_invalidate (NULL), ST_PARAM);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (NULL),
                    MHD_WEBSOCKET_VALIDITY_INVALID);
}
END_TEST

START_TEST (test_invalidate_breaks_decoding)
{
  char in[32];
  size_t n = tu_frame (in, 0x81, "hi", 2, key);
  struct MHD_WebSocketStream *ws = tu_stream (FL_SERVER, 0);
  size_t rd = 99;
  char *p = (char *) 1;
  size_t pl = 99;
  ck_assert_int_eq (MHD_websocket_stream_invalidate (ws), ST_OK);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_INVALID);
  ck_assert_int_eq (MHD_websocket_decode (ws, in, n, &rd, &p, &pl),
                    MHD_WEBSOCKET_STATUS_STREAM_BROKEN);
  ck_assert_ptr_null (p);
  ck_assert_uint_eq (pl, 0);
  /* Invalidating again is harmless, and stays invalid. */
  ck_assert_int_eq (MHD_websocket_stream_invalidate (ws), ST_OK);
  ck_assert_int_eq (MHD_websocket_decode (ws, in, n, &rd, &p, &pl),
                    MHD_WEBSOCKET_STATUS_STREAM_BROKEN);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_INVALID);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_invalidate_mid_message_breaks_decoding)
{
  struct buf in = { NULL, 0, 0 };
  struct MHD_WebSocketStream *ws = tu_stream (FL_SERVER, 0);
  size_t rd = 0;
  char *p = NULL;
  size_t pl = 0;
  buf_frame (&in, 0x01, "first", 5, 1);
  buf_frame (&in, 0x80, "last", 4, 1);
  feed_ok (ws, in.data, in.len - 3);
  ck_assert_int_eq (MHD_websocket_stream_invalidate (ws), ST_OK);
  ck_assert_int_eq (
    MHD_websocket_decode (ws, in.data + in.len - 3, 3, &rd, &p, &pl),
    MHD_WEBSOCKET_STATUS_STREAM_BROKEN);
  ck_assert_ptr_null (p);
  tu_stream_end (ws);
  free (in.data);
}
END_TEST

/* ------------------------------------------------------------ helpers */

START_TEST (test_helpers_use_stream_callbacks)
{
  struct MHD_WebSocketStream *ws = tu_stream (FL_SERVER, 0);
  long calls = tu_alloc_calls;
  long live = tu_alloc_live;
  char *b;
  char *c;

  tu_alloc_largest = 0;
  b = MHD_websocket_malloc (ws, 100);
  ck_assert_ptr_nonnull (b);
  ck_assert_int_eq (tu_alloc_calls, calls + 1);
  ck_assert_int_eq (tu_alloc_live, live + 1);
  ck_assert_uint_eq (tu_alloc_largest, 100);
  memset (b, 'b', 100);
  c = MHD_websocket_realloc (ws, b, 5000);
  ck_assert_ptr_nonnull (c);
  ck_assert_int_eq (tu_alloc_calls, calls + 2);
  ck_assert_uint_eq (tu_alloc_largest, 5000);
  ck_assert_int_eq (c[99], 'b');
  ck_assert_int_eq (MHD_websocket_free (ws, c), ST_OK);
  ck_assert_int_eq (tu_alloc_live, live);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_helpers_failing_allocation_returns_null)
{
  struct MHD_WebSocketStream *ws = tu_stream (FL_SERVER, 0);
  char *b = MHD_websocket_malloc (ws, 10);
  ck_assert_ptr_nonnull (b);
  tu_alloc_fail_at = tu_alloc_calls;
  tu_alloc_fail_sticky = 1;
  ck_assert_ptr_null (MHD_websocket_malloc (ws, 10));
  ck_assert_ptr_null (MHD_websocket_realloc (ws, b, 1000));
  tu_alloc_fail_at = -1;
  tu_alloc_fail_sticky = 0;
  /* A failed realloc leaves the old buffer to the caller. */
  ck_assert_int_eq (MHD_websocket_free (ws, b), ST_OK);
  MHD_websocket_stream_free (ws);
  ck_assert_int_eq (tu_alloc_live, 0);
}
END_TEST

START_TEST (test_helpers_with_null_stream)
{
  char *b = malloc (16);
  ck_assert_ptr_nonnull (b);
  ck_assert_ptr_null (MHD_websocket_malloc (NULL, 10));
  ck_assert_ptr_null (MHD_websocket_realloc (NULL, b, 100));
  ck_assert_int_eq (MHD_websocket_free (NULL, b), ST_PARAM);
  ck_assert_int_eq (MHD_websocket_free (NULL, NULL), ST_PARAM);
  ck_assert_int_eq (tu_alloc_calls, 0);
  free (b);
}
END_TEST

/** Free callback that records what it was given. */
static int seen_free_calls;
static void *seen_free_last;

static void
seen_free (void *buf)
{
  seen_free_calls++;
  seen_free_last = buf;
  free (buf);
}

START_TEST (test_free_null_buffer_ok)
{
  struct MHD_WebSocketStream *ws = tu_stream (FL_SERVER, 0);
  ck_assert_int_eq (MHD_websocket_free (ws, NULL), ST_OK);
  tu_stream_end (ws);
  /* As in the original, the callback is called for NULL too (a counting
     allocator sees one free per MHD_websocket_free). */
  ws = NULL;
  seen_free_calls = 0;
  seen_free_last = (void *) 1;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, FL_SERVER, 0, malloc,
                                                realloc, seen_free, NULL, NULL),
                    ST_OK);
  ck_assert_int_eq (MHD_websocket_free (ws, NULL), ST_OK);
  ck_assert_int_eq (seen_free_calls, 1);
  ck_assert_ptr_null (seen_free_last);
  /* The stream object is not the callback's: stream_free does not
     hand it over. */
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  ck_assert_int_eq (seen_free_calls, 1);
}
END_TEST

START_TEST (test_helpers_on_libc_stream)
{
  struct MHD_WebSocketStream *ws = NULL;
  char *b;
  ck_assert_int_eq (MHD_websocket_stream_init (&ws, FL_SERVER, 0), ST_OK);
  b = MHD_websocket_malloc (ws, 8);
  ck_assert_ptr_nonnull (b);
  b = MHD_websocket_realloc (ws, b, 80000);
  ck_assert_ptr_nonnull (b);
  memset (b, 0, 80000);
  ck_assert_int_eq (MHD_websocket_free (ws, b), ST_OK);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  ck_assert_int_eq (tu_alloc_calls, 0);
}
END_TEST

/* Decoded payloads and encoded frames come from the stream's malloc and
   are given back through its free. */
START_TEST (test_payloads_and_frames_use_callbacks)
{
  struct MHD_WebSocketStream *ws = tu_stream (FL_SERVER, 0);
  char in[64];
  size_t n = tu_frame (in, 0x82, "payload", 7, key);
  long live = tu_alloc_live;
  size_t rd = 0;
  char *p = NULL;
  size_t pl = 0;
  char *frame = NULL;
  size_t frame_len = 0;

  ck_assert_int_eq (MHD_websocket_decode (ws, in, n, &rd, &p, &pl),
                    MHD_WEBSOCKET_STATUS_BINARY_FRAME);
  ck_assert_int_eq (tu_alloc_live, live + 1);
  ck_assert_int_eq (MHD_websocket_free (ws, p), ST_OK);
  ck_assert_int_eq (tu_alloc_live, live);
  ck_assert_int_eq (
    MHD_websocket_encode_binary (ws, "x", 1, 0, &frame, &frame_len), ST_OK);
  ck_assert_int_eq (tu_alloc_live, live + 1);
  ck_assert_int_eq (MHD_websocket_free (ws, frame), ST_OK);
  ck_assert_int_eq (tu_alloc_live, live);
  MHD_websocket_stream_free (ws);
  ck_assert_int_eq (tu_alloc_live, 0);
}
END_TEST

/* The order the header documents (free the buffers handed out, then the
   stream) gives back everything, on a client stream too. */
START_TEST (test_stream_free_after_buffers_leaves_nothing)
{
  struct MHD_WebSocketStream *ws = tu_stream (FL_CLIENT, 0);
  char in[64];
  size_t n = tu_frame (in, 0x81, "text", 4, NULL);
  size_t rd = 0;
  char *p = NULL;
  size_t pl = 0;
  char *frame = NULL;
  size_t frame_len = 0;
  ck_assert_int_eq (MHD_websocket_decode (ws, in, n, &rd, &p, &pl),
                    MHD_WEBSOCKET_STATUS_TEXT_FRAME);
  ck_assert_int_eq (
    MHD_websocket_encode_text (ws, "t", 1, 0, &frame, &frame_len, NULL), ST_OK);
  MHD_websocket_free (ws, p);
  MHD_websocket_free (ws, frame);
  tu_stream_end (ws);
}
END_TEST

/* ------------------------------------------------------------ cleanup */

/**
 * Creates a stream, feeds @a len bytes (expecting no completed frame),
 * frees it, and checks that every allocation was given back.
 */
static void
free_with_state (int flags, const char *in, size_t len, size_t chunk)
{
  long live = tu_alloc_live;
  struct MHD_WebSocketStream *ws = tu_stream (flags, 0);
  size_t pos = 0;
  if (0 == chunk)
    chunk = len;
  while (pos < len)
  {
    size_t c = (len - pos < chunk) ? len - pos : chunk;
    feed_ok (ws, in + pos, c);
    pos += c;
  }
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  ck_assert_int_eq (tu_alloc_live, live);
}

START_TEST (test_free_with_half_a_big_frame)
{
  struct buf in = { NULL, 0, 0 };
  char *msg = malloc (200000);
  ck_assert_ptr_nonnull (msg);
  memset (msg, 'q', 200000);
  buf_frame (&in, 0x82, msg, 200000, 1);
  free_with_state (FL_SERVER, in.data, in.len / 2, 0);
  free_with_state (FL_SERVER, in.data, in.len / 2, 4096);
  free_with_state (FL_SERVER | FL_WANT, in.data, in.len / 2, 1000);
  in.len = 0;
  buf_frame (&in, 0x81, msg, 200000, 0);
  free_with_state (FL_CLIENT, in.data, in.len - 1, 0);
  free (msg);
  free (in.data);
}
END_TEST

START_TEST (test_free_with_fragmented_message_open)
{
  struct buf in = { NULL, 0, 0 };
  char msg[3000];
  memset (msg, 'f', sizeof (msg));
  buf_frame (&in, 0x02, msg, 3000, 1);
  buf_frame (&in, 0x00, msg, 2000, 1);
  free_with_state (FL_SERVER, in.data, in.len, 0);
  /* Plus half of the next fragment. */
  buf_frame (&in, 0x00, msg, 1000, 1);
  free_with_state (FL_SERVER, in.data, in.len - 500, 0);
  free_with_state (FL_SERVER, in.data, in.len - 500, 7);
  free (in.data);
}
END_TEST

START_TEST (test_free_with_fragment_holding_partial_character)
{
  struct buf in = { NULL, 0, 0 };
  size_t rd = 0;
  char *p = NULL;
  size_t pl = 0;
  int st;
  long live = tu_alloc_live;
  struct MHD_WebSocketStream *ws = tu_stream (FL_SERVER | FL_WANT, 0);
  buf_frame (&in, 0x01, "abc\xF0\x9F", 5, 1);
  ck_assert_int_eq (MHD_websocket_decode (ws, in.data, in.len, &rd, &p, &pl),
                    MHD_WEBSOCKET_STATUS_TEXT_FIRST_FRAGMENT);
  ck_assert_uint_eq (pl, 3);
  MHD_websocket_free (ws, p);
  /* A middle fragment that is all held back: whether it is reported
     (empty) is the decoder suite's business, only cleanup matters here. */
  in.len = 0;
  buf_frame (&in, 0x00, "\x98", 1, 1);
  st = MHD_websocket_decode (ws, in.data, in.len, &rd, &p, &pl);
  ck_assert (ST_OK == st || MHD_WEBSOCKET_STATUS_TEXT_NEXT_FRAGMENT == st);
  ck_assert_uint_eq (rd, in.len);
  MHD_websocket_free (ws, p);
  in.len = 0;
  buf_frame (&in, 0x80, "\x80zz", 3, 1);
  feed_ok (ws, in.data, in.len - 2);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  ck_assert_int_eq (tu_alloc_live, live);
  free (in.data);
}
END_TEST

START_TEST (test_free_with_partial_header)
{
  struct buf in = { NULL, 0, 0 };
  char msg[70000];
  size_t cut;
  memset (msg, 'h', sizeof (msg));
  buf_frame (&in, 0x82, msg, sizeof (msg), 1);
  /* Every cut inside the 14-byte header. */
  for (cut = 1; cut < 14; cut++)
  {
    free_with_state (FL_SERVER, in.data, cut, 0);
    free_with_state (FL_SERVER, in.data, cut, 1);
  }
  free (in.data);
}
END_TEST

START_TEST (test_free_with_partial_control_frame)
{
  struct buf in = { NULL, 0, 0 };
  char msg[125];
  memset (msg, 'c', sizeof (msg));
  buf_frame (&in, 0x89, msg, 125, 1);
  free_with_state (FL_SERVER, in.data, in.len - 60, 0);
  in.len = 0;
  buf_frame (&in, 0x88, "\x03\xE8 going", 8, 1);
  free_with_state (FL_SERVER, in.data, in.len - 1, 0);
  /* A ping cut in the middle of a fragmented message. */
  in.len = 0;
  buf_frame (&in, 0x01, msg, 100, 1);
  buf_frame (&in, 0x89, msg, 125, 1);
  free_with_state (FL_SERVER, in.data, in.len - 3, 0);
  free_with_state (FL_SERVER, in.data, 106 + 4, 0);
  free (in.data);
}
END_TEST

START_TEST (test_free_after_error_with_buffers)
{
  struct buf in = { NULL, 0, 0 };
  char msg[500];
  long live = tu_alloc_live;
  struct MHD_WebSocketStream *ws = tu_stream (FL_SERVER | FL_CLOSE, 0);
  size_t rd = 0;
  char *p = NULL;
  size_t pl = 0;
  int st;
  memset (msg, 'e', sizeof (msg));
  buf_frame (&in, 0x01, msg, 500, 1);
  buf_frame (&in, 0x81, "new", 3, 1); /* data frame inside a message */
  st = MHD_websocket_decode (ws, in.data, in.len, &rd, &p, &pl);
  ck_assert_int_eq (st, MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR);
  ck_assert_ptr_nonnull (p); /* the close frame to send */
  MHD_websocket_free (ws, p);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  ck_assert_int_eq (tu_alloc_live, live);
  free (in.data);
}
END_TEST

/* ------------------------------------------------------------ memory */

#define MR_MAX 32

/* For hot loops: unlike ck_assert, records no checkpoint when it passes
   (Check writes one to a file per passing assertion). */
#define MUST(c)                                                                \
  do                                                                           \
  {                                                                            \
    if (! (c))                                                                 \
      ck_abort_msg ("%s:%d: failed: %s", __FILE__, __LINE__, #c);              \
  } while (0)

/** What one decoding run produced. */
struct mrun
{
  int status[MR_MAX];
  char *payload[MR_MAX];
  size_t len[MR_MAX];
  size_t count;
  /** MEMORY_ERROR returns seen. */
  unsigned memerr;
  /** Allocation calls made by the decode calls. */
  long allocs;
};

static void
mrun_free (struct mrun *r)
{
  size_t i;
  for (i = 0; i < r->count; i++)
    free (r->payload[i]);
  r->count = 0;
}

enum mfail
{
  /** No failure. */
  MF_NONE,
  /** Only allocation k fails; the call is retried. */
  MF_ONCE,
  /** Every allocation from k on fails; stop at the first MEMORY_ERROR. */
  MF_STICKY_STOP,
  /** Every allocation from k on fails until the first MEMORY_ERROR; then
      allocations succeed again and the call is retried. */
  MF_STICKY_RECOVER
};

/**
 * Decodes @a in in chunks of @a chunk bytes (0: whole) on a fresh stream,
 * with allocations failing as @a how says from allocation @a k (counted
 * from the first decode call).  Each MEMORY_ERROR must leave the stream
 * as valid as before the call, return no payload, and the retried call
 * (with the rest of the input after what the failed call consumed) goes
 * on as if nothing happened.
 */
static void
mem_run (struct mrun *r, int flags, const char *in, size_t len, size_t chunk,
         enum mfail how, long k)
{
  long live = tu_alloc_live;
  struct MHD_WebSocketStream *ws = tu_stream (flags, 0);
  long base = tu_alloc_calls;
  size_t pos = 0;
  unsigned calls = 0;

  memset (r, 0, sizeof (*r));
  if (MF_NONE != how)
  {
    tu_alloc_fail_at = base + k;
    tu_alloc_fail_sticky = (MF_ONCE != how);
  }
  if (0 == chunk)
    chunk = len;
  while (pos < len)
  {
    size_t c = (len - pos < chunk) ? len - pos : chunk;
    size_t off = 0;
    while (off < c)
    {
      size_t rd = 12345;
      char *p = (char *) 1;
      size_t pl = 12345;
      int before = MHD_websocket_stream_is_valid (ws);
      int st = MHD_websocket_decode (ws, in + pos + off, c - off, &rd, &p, &pl);
      MUST (++calls < 100000);
      MUST (rd <= c - off);
      off += rd;
      if (ST_MEM == st)
      {
        r->memerr++;
        MUST (NULL == p && 0 == pl);
        MUST (MHD_WEBSOCKET_VALIDITY_INVALID
              != MHD_websocket_stream_is_valid (ws));
        /* Unchanged, except that a close frame's first byte, read
           before the allocation failed, already ends the data frames
           (as in the original). */
        MUST (before == (int) MHD_websocket_stream_is_valid (ws)
              || (MHD_WEBSOCKET_VALIDITY_ONLY_VALID_FOR_CONTROL_FRAMES
                  == MHD_websocket_stream_is_valid (ws)));
        if (MF_STICKY_STOP == how)
          goto done;
        if (MF_STICKY_RECOVER == how)
        {
          tu_alloc_fail_at = -1;
          tu_alloc_fail_sticky = 0;
        }
        /* Only one allocation failed: only one MEMORY_ERROR. */
        MUST (MF_ONCE != how || 1 == r->memerr);
        continue;
      }
      if (st < 0)
        ck_abort_msg ("unexpected status %d (fail at %ld)", st, k);
      if (ST_OK == st)
      {
        MUST (off == c && NULL == p);
        break;
      }
      MUST (r->count < MR_MAX);
      r->status[r->count] = st;
      r->len[r->count] = pl;
      r->payload[r->count] = NULL;
      if (NULL != p)
      {
        MUST (pl > 0);
        r->payload[r->count] = malloc (pl);
        MUST (NULL != r->payload[r->count]);
        memcpy (r->payload[r->count], p, pl);
        MHD_websocket_free (ws, p);
      }
      else
        MUST (0 == pl);
      r->count++;
    }
    pos += c;
  }
done:
  r->allocs = tu_alloc_calls - base;
  tu_alloc_fail_at = -1;
  tu_alloc_fail_sticky = 0;
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  ck_assert_int_eq (tu_alloc_live, live);
}

/** Asserts that @a b's events are the first @a n of @a a's. */
static void
same_events (const struct mrun *a, const struct mrun *b, size_t n, long k)
{
  size_t i;
  for (i = 0; i < n; i++)
  {
    ck_assert_msg (
      a->status[i] == b->status[i] && a->len[i] == b->len[i]
        && (0 == a->len[i]
            || 0 == memcmp (a->payload[i], b->payload[i], a->len[i])),
      "fail at %ld: event %zu differs", k, i);
  }
}

/** Text, a fragmented binary message with a ping inside, a fragmented
    text with a character cut, ping, pong, close. */
static void
mem_input (struct buf *in, int masked)
{
  char *big = malloc (20000);
  size_t i;
  ck_assert_ptr_nonnull (big);
  for (i = 0; i < 20000; i++)
    big[i] = (char) (unsigned char) (i * 13u);
  buf_frame (in, 0x81, "Hello, world", 12, masked);
  buf_frame (in, 0x02, big, 300, masked);
  buf_frame (in, 0x89, "in between", 10, masked);
  buf_frame (in, 0x00, big + 300, 3000, masked);
  buf_frame (in, 0x80, big + 3300, 16700, masked);
  buf_frame (in, 0x01, "ab\xE2\x82", 4, masked);
  buf_frame (in, 0x80,
             "\xAC"
             "cd",
             3, masked);
  buf_frame (in, 0x89, "ping!", 5, masked);
  buf_frame (in, 0x8A, NULL, 0, masked);
  buf_frame (in, 0x82, big, 200, masked);
  buf_frame (in, 0x88,
             "\x03\xE8"
             "bye",
             5, masked);
  buf_frame (in, 0x89, "after", 5, masked);
  free (big);
}

/** The k values worth trying: all of them, or a spread when there are
    very many allocations (an implementation that grows buffers in small
    steps). */
static long
next_k (long k, long total)
{
  if (total <= 200 || k < 100)
    return k + 1;
  return k + total / 100;
}

/* _i: flags and chunking. */
static const struct
{
  int flags;
  size_t chunk;
} mem_cases[] = {
  { FL_SERVER, 0 },
  { FL_SERVER, 7 },
  { FL_SERVER, 1000 },
  { FL_SERVER | FL_WANT, 0 },
  { FL_SERVER | FL_WANT, 5 },
  { FL_CLIENT, 0 },
  { FL_CLIENT | FL_WANT, 64 },
};

START_TEST (test_memory_error_once_then_retry_succeeds)
{
  int flags = mem_cases[_i].flags;
  size_t chunk = mem_cases[_i].chunk;
  struct buf in = { NULL, 0, 0 };
  struct mrun clean;
  struct mrun r;
  long k;

  mem_input (&in, 0 == (flags & FL_CLIENT));
  mem_run (&clean, flags, in.data, in.len, chunk, MF_NONE, 0);
  ck_assert_uint_eq (clean.memerr, 0);
  ck_assert_uint_ge (clean.count, 8);
  ck_assert_int_gt (clean.allocs, 0);
  for (k = 0; k < clean.allocs; k = next_k (k, clean.allocs))
  {
    mem_run (&r, flags, in.data, in.len, chunk, MF_ONCE, k);
    ck_assert_msg (1 == r.memerr, "fail at %ld: %u MEMORY_ERRORs", k, r.memerr);
    ck_assert_msg (r.count == clean.count, "fail at %ld: %zu events, not %zu",
                   k, r.count, clean.count);
    same_events (&clean, &r, clean.count, k);
    mrun_free (&r);
  }
  mrun_free (&clean);
  free (in.data);
}
END_TEST

START_TEST (test_memory_error_sticky_keeps_stream_and_frees)
{
  int flags = mem_cases[_i].flags;
  size_t chunk = mem_cases[_i].chunk;
  struct buf in = { NULL, 0, 0 };
  struct mrun clean;
  struct mrun r;
  long k;

  mem_input (&in, 0 == (flags & FL_CLIENT));
  mem_run (&clean, flags, in.data, in.len, chunk, MF_NONE, 0);
  for (k = 0; k < clean.allocs; k = next_k (k, clean.allocs))
  {
    /* Stopping there: nothing leaks, what came before was right. */
    mem_run (&r, flags, in.data, in.len, chunk, MF_STICKY_STOP, k);
    ck_assert_msg (r.memerr >= 1, "fail from %ld: no MEMORY_ERROR", k);
    ck_assert_uint_le (r.count, clean.count);
    same_events (&clean, &r, r.count, k);
    mrun_free (&r);
    /* Recovering: the rest decodes as if nothing happened. */
    mem_run (&r, flags, in.data, in.len, chunk, MF_STICKY_RECOVER, k);
    ck_assert_msg (r.memerr >= 1, "fail from %ld: no MEMORY_ERROR", k);
    ck_assert_uint_eq (r.count, clean.count);
    same_events (&clean, &r, clean.count, k);
    mrun_free (&r);
  }
  mrun_free (&clean);
  free (in.data);
}
END_TEST

/* A stream that fails every allocation from the start still answers
   MEMORY_ERROR (not a protocol error) for every frame with a payload. */
START_TEST (test_memory_error_every_allocation_fails)
{
  struct buf in = { NULL, 0, 0 };
  long live = tu_alloc_live;
  struct MHD_WebSocketStream *ws = tu_stream (FL_SERVER, 0);
  int i;
  buf_frame (&in, 0x81, "Hello", 5, 1);
  tu_alloc_fail_at = tu_alloc_calls;
  tu_alloc_fail_sticky = 1;
  for (i = 0; i < 3; i++)
  {
    size_t rd = 0;
    char *p = (char *) 1;
    size_t pl = 9;
    size_t off = 0;
    int st = ST_OK;
    unsigned n;
    /* Feed the whole frame (a decoder may take the header first). */
    for (n = 0; n < 20 && off < in.len; n++)
    {
      st = MHD_websocket_decode (ws, in.data + off, in.len - off, &rd, &p, &pl);
      off += rd;
      if (ST_OK != st)
        break;
    }
    ck_assert_int_eq (st, ST_MEM);
    ck_assert_ptr_null (p);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                      MHD_WEBSOCKET_VALIDITY_VALID);
    /* Whatever was consumed stays consumed; retry with the rest. */
    in.len -= off;
    memmove (in.data, in.data + off, in.len);
    if (0 == in.len)
      break;
  }
  tu_alloc_fail_at = -1;
  tu_alloc_fail_sticky = 0;
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  ck_assert_int_eq (tu_alloc_live, live);
  free (in.data);
}
END_TEST

/* ------------------------------------------------------------ threads */

/* The threaded tests use their own allocator: the tu_ counters are not
   thread-safe, and both threads allocate through the one stream. */
static pthread_mutex_t th_lock = PTHREAD_MUTEX_INITIALIZER;
static long th_live;

static void *
th_malloc (size_t len)
{
  void *p = malloc (len);
  if (NULL != p)
  {
    pthread_mutex_lock (&th_lock);
    th_live++;
    pthread_mutex_unlock (&th_lock);
  }
  return p;
}

static void *
th_realloc (void *buf, size_t len)
{
  void *p = realloc (buf, len);
  if (NULL == buf && NULL != p)
  {
    pthread_mutex_lock (&th_lock);
    th_live++;
    pthread_mutex_unlock (&th_lock);
  }
  return p;
}

static void
th_free (void *buf)
{
  if (NULL == buf)
    return;
  pthread_mutex_lock (&th_lock);
  th_live--;
  pthread_mutex_unlock (&th_lock);
  free (buf);
}

/** A thread-safe generator (xorshift behind a lock). */
struct th_rng
{
  pthread_mutex_t lock;
  uint32_t state;
  unsigned long calls;
};

static size_t
th_rng (void *cls, void *buf, size_t len)
{
  struct th_rng *g = cls;
  unsigned char *b = buf;
  size_t i;
  pthread_mutex_lock (&g->lock);
  for (i = 0; i < len; i++)
  {
    g->state ^= g->state << 13;
    g->state ^= g->state >> 17;
    g->state ^= g->state << 5;
    b[i] = (unsigned char) (g->state >> 24);
  }
  g->calls++;
  pthread_mutex_unlock (&g->lock);
  return len;
}

/** One frame to send. */
struct th_op
{
  unsigned opcode;
  int frag;
  size_t off;
  size_t len;
};

/** One thing the receiver must see: a payload range of th_store. */
struct th_ev
{
  int status;
  size_t off;
  size_t len;
};

#define TH_FRAMES 20000

/** Frames and expected events, shared read-only by both threads. */
struct th_plan
{
  char *store;
  size_t store_len;
  struct th_op *ops;
  size_t nops;
  struct th_ev *evs;
  size_t nevs;
};

static uint32_t
lcg (uint32_t *s)
{
  *s = *s * 1103515245u + 12345u;
  return *s >> 8;
}

/** Appends @a len bytes of payload to the store (text is valid UTF-8). */
static size_t
store_add (struct th_plan *pl, size_t *cap, size_t len, int text,
           uint32_t *seed)
{
  static const char *const chars[] = { "a", "\xC3\xA9", "\xE2\x82\xAC",
                                       "\xF0\x9F\x98\x80", " " };
  size_t off = pl->store_len;
  size_t n = 0;
  if (off + len > *cap)
  {
    *cap = (off + len) * 2;
    pl->store = realloc (pl->store, *cap);
    ck_assert_ptr_nonnull (pl->store);
  }
  while (n < len)
  {
    if (text)
    {
      const char *c = chars[lcg (seed) % 5];
      size_t cl = strlen (c);
      if (cl > len - n)
      {
        c = "z";
        cl = 1;
      }
      memcpy (pl->store + off + n, c, cl);
      n += cl;
    }
    else
      pl->store[off + n++] = (char) (unsigned char) lcg (seed);
  }
  pl->store_len += len;
  return off;
}

/**
 * Plans about TH_FRAMES frames: text and binary messages of varied sizes
 * (some above 125 and 65535 bytes), fragmented messages with a ping
 * between the fragments, pings and pongs, and a close at the end.
 */
static void
th_plan_make (struct th_plan *pl, uint32_t seed)
{
  size_t cap = 0;
  size_t opcap = TH_FRAMES + 16;
  size_t i = 0;
  size_t singles = 0;
  memset (pl, 0, sizeof (*pl));
  pl->ops = malloc (opcap * sizeof (*pl->ops));
  pl->evs = malloc (opcap * sizeof (*pl->evs));
  ck_assert_ptr_nonnull (pl->ops);
  ck_assert_ptr_nonnull (pl->evs);
  while (pl->nops + 5 < TH_FRAMES)
  {
    unsigned kind = i % 10;
    size_t len;
    size_t off;
    i++;
    if (kind < 4 || kind == 6)
    {
      int text = (kind < 4);
      /* Now and then one with a 64-bit length. */
      len = (0 == ++singles % 700) ? 70000 : lcg (&seed) % 300;
      off = store_add (pl, &cap, len, text, &seed);
      pl->ops[pl->nops++] =
        (struct th_op){ text ? 0x1u : 0x2u, MHD_WEBSOCKET_FRAGMENTATION_NONE,
                        off, len };
      pl->evs[pl->nevs++] = (struct th_ev){ text ? 1 : 2, off, len };
    }
    else if (kind == 4 || kind == 7)
    {
      /* Three fragments, a ping after the first. */
      int text = (kind == 4);
      size_t a;
      size_t b;
      size_t poff;
      size_t plen = lcg (&seed) % 126;
      len = lcg (&seed) % 600;
      off = store_add (pl, &cap, len, text, &seed);
      poff = store_add (pl, &cap, plen, 0, &seed);
      a = lcg (&seed) % (len + 1);
      b = a + lcg (&seed) % (len - a + 1);
      pl->ops[pl->nops++] =
        (struct th_op){ text ? 0x1u : 0x2u, MHD_WEBSOCKET_FRAGMENTATION_FIRST,
                        off, a };
      pl->ops[pl->nops++] =
        (struct th_op){ 0x9u, MHD_WEBSOCKET_FRAGMENTATION_NONE, poff, plen };
      pl->ops[pl->nops++] =
        (struct th_op){ text ? 0x1u : 0x2u,
                        MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING, off + a, b - a };
      pl->ops[pl->nops++] =
        (struct th_op){ text ? 0x1u : 0x2u, MHD_WEBSOCKET_FRAGMENTATION_LAST,
                        off + b, len - b };
      pl->evs[pl->nevs++] =
        (struct th_ev){ MHD_WEBSOCKET_STATUS_PING_FRAME, poff, plen };
      pl->evs[pl->nevs++] = (struct th_ev){ text ? 1 : 2, off, len };
    }
    else
    {
      unsigned op = (kind == 5) ? 0x9u : 0xAu;
      len = lcg (&seed) % 126;
      off = store_add (pl, &cap, len, 0, &seed);
      pl->ops[pl->nops++] =
        (struct th_op){ op, MHD_WEBSOCKET_FRAGMENTATION_NONE, off, len };
      pl->evs[pl->nevs++] = (struct th_ev){ (int) op, off, len };
    }
  }
  /* Close 1000 "bye": its payload is code and reason. */
  {
    size_t off = store_add (pl, &cap, 5, 0, &seed);
    memcpy (pl->store + off,
            "\x03\xE8"
            "bye",
            5);
    pl->ops[pl->nops++] =
      (struct th_op){ 0x8u, MHD_WEBSOCKET_FRAGMENTATION_NONE, off, 5 };
    pl->evs[pl->nevs++] =
      (struct th_ev){ MHD_WEBSOCKET_STATUS_CLOSE_FRAME, off, 5 };
  }
}

static void
th_plan_free (struct th_plan *pl)
{
  free (pl->store);
  free (pl->ops);
  free (pl->evs);
}

/** The plan as wire bytes, masked or not, built with tu_frame. */
static void
th_wire (const struct th_plan *pl, struct buf *out, int masked)
{
  size_t i;
  for (i = 0; i < pl->nops; i++)
  {
    const struct th_op *o = &pl->ops[i];
    unsigned b0;
    switch (o->frag)
    {
    case MHD_WEBSOCKET_FRAGMENTATION_FIRST:
      b0 = o->opcode;
      break;
    case MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING:
      b0 = 0x00;
      break;
    case MHD_WEBSOCKET_FRAGMENTATION_LAST:
      b0 = 0x80;
      break;
    default:
      b0 = 0x80 | o->opcode;
      break;
    }
    buf_frame (out, b0, pl->store + o->off, o->len, masked);
  }
}

/** A thread's outcome: an empty message means success. */
struct th_job
{
  struct MHD_WebSocketStream *ws;
  const struct th_plan *plan;
  const char *in;
  size_t in_len;
  uint32_t seed;
  struct buf out;
  char err[160];
};

/**
 * Decodes @a in (fed in random chunks) on @a ws and compares every event
 * with the plan; returns a description of the first mismatch, or writes
 * nothing.  No Check assertion here: it may run outside the main thread.
 */
static void
th_check_decode (struct MHD_WebSocketStream *ws, const struct th_plan *pl,
                 const char *in, size_t len, uint32_t seed, char *err,
                 size_t errlen)
{
  size_t pos = 0;
  size_t ev = 0;
  while (pos < len)
  {
    size_t c = 1 + lcg (&seed) % 3000;
    size_t off = 0;
    if (c > len - pos)
      c = len - pos;
    while (off < c)
    {
      size_t rd = 0;
      char *p = NULL;
      size_t plen = 0;
      int st =
        MHD_websocket_decode (ws, in + pos + off, c - off, &rd, &p, &plen);
      off += rd;
      if (st < 0)
      {
        snprintf (err, errlen, "decode status %d at byte %zu", st, pos + off);
        return;
      }
      if (ST_OK == st)
      {
        if (off != c)
        {
          snprintf (err, errlen, "OK with %zu bytes left", c - off);
          return;
        }
        break;
      }
      if (0 == rd || ev >= pl->nevs || st != pl->evs[ev].status
          || plen != pl->evs[ev].len
          || (plen > 0 && 0 != memcmp (p, pl->store + pl->evs[ev].off, plen)))
      {
        snprintf (err, errlen, "event %zu: status %d, %zu bytes: unexpected",
                  ev, st, plen);
        MHD_websocket_free (ws, p);
        return;
      }
      MHD_websocket_free (ws, p);
      ev++;
    }
    pos += c;
  }
  if (ev != pl->nevs)
    snprintf (err, errlen, "%zu events, not %zu", ev, pl->nevs);
}

static void *
th_decoder (void *cls)
{
  struct th_job *j = cls;
  th_check_decode (j->ws, j->plan, j->in, j->in_len, j->seed, j->err,
                   sizeof (j->err));
  return NULL;
}

static void *
th_encoder (void *cls)
{
  struct th_job *j = cls;
  const struct th_plan *pl = j->plan;
  int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  size_t i;
  for (i = 0; i < pl->nops; i++)
  {
    const struct th_op *o = &pl->ops[i];
    const char *p = pl->store + o->off;
    char *frame = NULL;
    size_t frame_len = 0;
    int st;
    switch (o->opcode)
    {
    case 0x1:
      st = MHD_websocket_encode_text (j->ws, p, o->len, o->frag, &frame,
                                      &frame_len, &step);
      break;
    case 0x2:
      st = MHD_websocket_encode_binary (j->ws, p, o->len, o->frag, &frame,
                                        &frame_len);
      break;
    case 0x9:
      st = MHD_websocket_encode_ping (j->ws, p, o->len, &frame, &frame_len);
      break;
    case 0xA:
      st = MHD_websocket_encode_pong (j->ws, p, o->len, &frame, &frame_len);
      break;
    default:
      st = MHD_websocket_encode_close (
        j->ws,
        (unsigned short) (((unsigned char) p[0] << 8) | (unsigned char) p[1]),
        p + 2, o->len - 2, &frame, &frame_len);
      break;
    }
    if (ST_OK != st || NULL == frame)
    {
      snprintf (j->err, sizeof (j->err), "op %zu: encode status %d", i, st);
      return NULL;
    }
    /* buf_add asserts only on malloc failure, which Check would report
       from this thread; that would be an environment failure anyway. */
    if (j->out.len + frame_len > j->out.cap)
    {
      size_t cap = (j->out.cap + frame_len) * 2;
      char *n = realloc (j->out.data, cap);
      if (NULL == n)
      {
        snprintf (j->err, sizeof (j->err), "out of memory");
        MHD_websocket_free (j->ws, frame);
        return NULL;
      }
      j->out.data = n;
      j->out.cap = cap;
    }
    memcpy (j->out.data + j->out.len, frame, frame_len);
    j->out.len += frame_len;
    MHD_websocket_free (j->ws, frame);
  }
  return NULL;
}

/**
 * The full-duplex pattern: on one stream, a thread decodes the peer's
 * frames while another encodes frames for the peer.  Afterwards the
 * encoded frames are decoded on a separate stream of the other role.
 */
static void
full_duplex (int client)
{
  struct th_plan in_plan;
  struct th_plan out_plan;
  struct buf wire = { NULL, 0, 0 };
  struct th_rng g;
  struct MHD_WebSocketStream *ws = NULL;
  struct MHD_WebSocketStream *peer = NULL;
  struct th_job dec;
  struct th_job enc;
  pthread_t td;
  pthread_t te;
  char err[160] = "";

  th_live = 0;
  pthread_mutex_init (&g.lock, NULL);
  g.state = 0x9E3779B9u;
  g.calls = 0;
  th_plan_make (&in_plan, 1);
  th_plan_make (&out_plan, 2);
  /* What the peer sends: masked towards a server, unmasked towards a
     client. */
  th_wire (&in_plan, &wire, ! client);
  ck_assert_int_eq (
    MHD_websocket_stream_init2 (&ws, client ? FL_CLIENT : FL_SERVER, 0,
                                th_malloc, th_realloc, th_free, &g, th_rng),
    ST_OK);
  memset (&dec, 0, sizeof (dec));
  memset (&enc, 0, sizeof (enc));
  dec.ws = ws;
  dec.plan = &in_plan;
  dec.in = wire.data;
  dec.in_len = wire.len;
  dec.seed = 77;
  enc.ws = ws;
  enc.plan = &out_plan;
  ck_assert_int_eq (pthread_create (&td, NULL, th_decoder, &dec), 0);
  ck_assert_int_eq (pthread_create (&te, NULL, th_encoder, &enc), 0);
  ck_assert_int_eq (pthread_join (td, NULL), 0);
  ck_assert_int_eq (pthread_join (te, NULL), 0);
  ck_assert_msg ('\0' == dec.err[0], "decoder thread: %s", dec.err);
  ck_assert_msg ('\0' == enc.err[0], "encoder thread: %s", enc.err);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_ONLY_VALID_FOR_CONTROL_FRAMES);
  if (client)
    ck_assert_uint_ge (g.calls, 1);

  /* The peer reads what the encoder wrote. */
  ck_assert_int_eq (
    MHD_websocket_stream_init2 (&peer, client ? FL_SERVER : FL_CLIENT, 0,
                                th_malloc, th_realloc, th_free, &g, th_rng),
    ST_OK);
  th_check_decode (peer, &out_plan, enc.out.data, enc.out.len, 5, err,
                   sizeof (err));
  ck_assert_msg ('\0' == err[0], "encoded frames: %s", err);
  ck_assert_int_eq (MHD_websocket_stream_free (peer), ST_OK);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  ck_assert_int_eq (th_live, 0);
  free (enc.out.data);
  free (wire.data);
  th_plan_free (&in_plan);
  th_plan_free (&out_plan);
  pthread_mutex_destroy (&g.lock);
}

START_TEST (test_threads_decode_while_encoding_server)
{
  full_duplex (0);
}
END_TEST

START_TEST (test_threads_decode_while_encoding_client)
{
  full_duplex (1);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *
stream_suite (void)
{
  Suite *s = suite_create ("stream");
  TCase *tc;

  tc = tcase_create ("init");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_init_server_ok);
  tcase_add_test (tc, test_init_server_all_flags_ok);
  tcase_add_test (tc, test_init2_client_with_rng_ok);
  tcase_add_test (tc, test_init2_server_without_rng_ok);
  tcase_add_test (tc, test_init_null_ws_is_parameter_error);
  tcase_add_test (tc, test_init_unknown_flag_bit_is_parameter_error);
  tcase_add_test (tc, test_init2_null_callbacks_are_parameter_error);
  tcase_add_test (tc, test_client_without_rng_is_parameter_error);
#if SIZE_MAX > 0x7FFFFFFFFFFFFFFF
  tcase_add_test (tc, test_max_above_2p63_is_parameter_error);
  tcase_add_test (tc, test_max_2p63_minus_1_accepted);
#endif
  tcase_add_test (tc, test_max_zero_means_no_limit);
  tcase_add_test (tc, test_init2_stream_not_from_callbacks);
  tcase_add_test (tc, test_init_with_libc_allocator_works);
  suite_add_tcase (s, tc);

  tc = tcase_create ("validity");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_new_stream_is_valid);
  tcase_add_test (tc, test_null_stream_calls);
  tcase_add_test (tc, test_invalidate_breaks_decoding);
  tcase_add_test (tc, test_invalidate_mid_message_breaks_decoding);
  suite_add_tcase (s, tc);

  tc = tcase_create ("allocator helpers");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_helpers_use_stream_callbacks);
  tcase_add_test (tc, test_helpers_failing_allocation_returns_null);
  tcase_add_test (tc, test_helpers_with_null_stream);
  tcase_add_test (tc, test_free_null_buffer_ok);
  tcase_add_test (tc, test_helpers_on_libc_stream);
  tcase_add_test (tc, test_payloads_and_frames_use_callbacks);
  tcase_add_test (tc, test_stream_free_after_buffers_leaves_nothing);
  suite_add_tcase (s, tc);

  tc = tcase_create ("stream_free cleanup");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_free_with_half_a_big_frame);
  tcase_add_test (tc, test_free_with_fragmented_message_open);
  tcase_add_test (tc, test_free_with_fragment_holding_partial_character);
  tcase_add_test (tc, test_free_with_partial_header);
  tcase_add_test (tc, test_free_with_partial_control_frame);
  tcase_add_test (tc, test_free_after_error_with_buffers);
  suite_add_tcase (s, tc);

  tc = tcase_create ("memory errors");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_set_timeout (tc, 60);
  tcase_add_loop_test (tc, test_memory_error_once_then_retry_succeeds, 0,
                       (int) (sizeof (mem_cases) / sizeof (mem_cases[0])));
  tcase_add_loop_test (tc, test_memory_error_sticky_keeps_stream_and_frees, 0,
                       (int) (sizeof (mem_cases) / sizeof (mem_cases[0])));
  tcase_add_test (tc, test_memory_error_every_allocation_fails);
  suite_add_tcase (s, tc);

  tc = tcase_create ("threads");
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_threads_decode_while_encoding_server);
  tcase_add_test (tc, test_threads_decode_while_encoding_client);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (stream_suite ());
  int failed;
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (failed > 0) ? EXIT_FAILURE : EXIT_SUCCESS;
}
