/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_encode.c
 * @brief Check suite for the frame encoders (contract section 3,
 *        "Encoding"): exact bytes, length forms, fragmentation, masking,
 *        UTF-8 validation and its utf8_step, parameter and size errors,
 *        memory failures, and round trips through the decoder.
 */
#include <limits.h>
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
#define ST_MAX MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED
#define ST_UTF8 MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR

#define F_NONE MHD_WEBSOCKET_FRAGMENTATION_NONE
#define F_FIRST MHD_WEBSOCKET_FRAGMENTATION_FIRST
#define F_FOLLOWING MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING
#define F_LAST MHD_WEBSOCKET_FRAGMENTATION_LAST

#define MIB (1024u * 1024u)

/* ------------------------------------------------------------ helpers */

/** Which encoder a table-driven test calls. */
enum kind
{
  K_TEXT,
  K_BINARY,
  K_PING,
  K_PONG,
  K_CLOSE,
  K_COUNT
};

static const char *const kind_name[K_COUNT] = { "text", "binary", "ping",
                                                "pong", "close" };

/** The first byte each encoder writes for an unfragmented frame. */
static const unsigned char kind_b0[K_COUNT] = { 0x81, 0x82, 0x89, 0x8A, 0x88 };

/**
 * Calls encoder @a k.  Close frames use code 1000 with the payload as
 * reason text; text uses a utf8_step for fragmented calls.
 */
static int
encode (enum kind k, struct MHD_WebSocketStream *ws, const char *p, size_t len,
        int frag, char **frame, size_t *frame_len)
{
  int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  switch (k)
  {
  case K_TEXT:
    return MHD_websocket_encode_text (ws, p, len, frag, frame, frame_len,
                                      &step);
  case K_BINARY:
    return MHD_websocket_encode_binary (ws, p, len, frag, frame, frame_len);
  case K_PING:
    return MHD_websocket_encode_ping (ws, p, len, frame, frame_len);
  case K_PONG:
    return MHD_websocket_encode_pong (ws, p, len, frame, frame_len);
  case K_CLOSE:
  default:
    return MHD_websocket_encode_close (ws, MHD_WEBSOCKET_CLOSEREASON_REGULAR, p,
                                       len, frame, frame_len);
  }
}

/**
 * Asserts a successful encode that produced exactly @a want (followed by
 * a NUL), then frees the frame through the stream.
 */
static void
expect_frame (struct MHD_WebSocketStream *ws, int st, char *frame,
              size_t frame_len, const void *want, size_t want_len)
{
  ck_assert_int_eq (st, ST_OK);
  ck_assert_ptr_nonnull (frame);
  ck_assert_uint_eq (frame_len, want_len);
  ck_assert_mem_eq (frame, want, want_len);
  ck_assert_int_eq (frame[frame_len], '\0');
  ck_assert_int_eq (MHD_websocket_free (ws, frame), ST_OK);
}

/** Asserts a failed encode with status @a want and no frame. */
static void
expect_no_frame (int st, int want, const char *frame, size_t frame_len)
{
  ck_assert_int_eq (st, want);
  ck_assert_ptr_null (frame);
  ck_assert_uint_eq (frame_len, 0);
}

/** A server stream (unmasked frames) with the counting allocator. */
static struct MHD_WebSocketStream *
server_stream (void)
{
  return tu_stream (MHD_WEBSOCKET_FLAG_SERVER, 0);
}

/** A client stream whose mask bytes come from tu_rng with @a counter. */
static struct MHD_WebSocketStream *
client_stream (unsigned *counter)
{
  struct MHD_WebSocketStream *ws = NULL;
  *counter = 0;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, MHD_WEBSOCKET_FLAG_CLIENT,
                                                0, tu_malloc, tu_realloc,
                                                tu_free, counter, tu_rng),
                    ST_OK);
  ck_assert_ptr_nonnull (ws);
  return ws;
}

/** The masking key of the @a n-th frame (0-based) of a client_stream. */
static void
mask_of (unsigned n, uint8_t key[4])
{
  unsigned i;
  for (i = 0; i < 4; i++)
    key[i] = (uint8_t) (0x11u * (4u * n + i + 1u));
}

static void
setup (void)
{
  tu_alloc_reset ();
}

/** @a len bytes of a binary pattern (every byte value occurs). */
static char *
binary_payload (size_t len)
{
  char *p = malloc (len + 1);
  size_t i;
  ck_assert_ptr_nonnull (p);
  for (i = 0; i < len; i++)
    p[i] = (char) (unsigned char) ((i * 7u + (i >> 8)) & 0xFFu);
  p[len] = '\0';
  return p;
}

/** @a len bytes of valid UTF-8 with 1- to 4-byte characters. */
static char *
text_payload (size_t len)
{
  static const char *const chars[] = { "a",
                                       "\xC3\xA9",
                                       "\xE2\x82\xAC",
                                       "\xF0\x9F\x98\x80",
                                       "z",
                                       "\xED\x9F\xBF",
                                       "\xEF\xBF\xBD",
                                       "\xF4\x8F\xBF\xBF",
                                       "\xE0\xA0\x80",
                                       "\xDF\xBF" };
  char *p = malloc (len + 1);
  size_t n = 0;
  size_t c = 0;
  ck_assert_ptr_nonnull (p);
  while (n < len)
  {
    const char *ch = chars[c++ % (sizeof (chars) / sizeof (chars[0]))];
    size_t cl = strlen (ch);
    if (cl > len - n)
    {
      ch = "x";
      cl = 1;
    }
    memcpy (p + n, ch, cl);
    n += cl;
  }
  p[len] = '\0';
  return p;
}

/** A growable byte buffer for concatenating frames. */
struct buf
{
  char *data;
  size_t len;
  size_t cap;
};

static void
buf_add (struct buf *b, const void *p, size_t len)
{
  if (b->len + len > b->cap)
  {
    size_t cap = (b->cap + len) * 2 + 64;
    char *n = realloc (b->data, cap);
    ck_assert_ptr_nonnull (n);
    b->data = n;
    b->cap = cap;
  }
  if (len > 0)
    memcpy (b->data + b->len, p, len);
  b->len += len;
}

/**
 * A pointer whose bytes can not be read: proves that an encoder rejects
 * a length before it touches the payload (a read would crash the forked
 * test).
 */
static const char *
unreadable (void)
{
  /* A zero-length region at the end of a fenced area starts on the
     trailing inaccessible page; the mapping lives until the forked test
     exits. */
  struct tu_fence f;
  tu_fence_init (&f, 0);
  return (const char *) tu_fence_place (&f, 0, 1);
}

/* ------------------------------------------------ exact bytes (server) */

START_TEST (test_text_hello_exact_bytes)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  static const unsigned char want[] = {
    0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f
  };
  char *frame = (char *) 1;
  size_t frame_len = 99;
  int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  int st = MHD_websocket_encode_text (ws, "Hello", 5, F_NONE, &frame,
                                      &frame_len, &step);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  ck_assert_int_eq (step, MHD_WEBSOCKET_UTF8STEP_NORMAL);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_text_without_utf8_step_exact_bytes)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  static const unsigned char want[] = {
    0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f
  };
  char *frame = NULL;
  size_t frame_len = 0;
  int st = MHD_websocket_encode_text (ws, "Hello", 5, F_NONE, &frame,
                                      &frame_len, NULL);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_binary_exact_bytes)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  static const unsigned char want[] = { 0x82, 0x04, 0x00, 0x01, 0x80, 0xFF };
  char *frame = NULL;
  size_t frame_len = 0;
  int st = MHD_websocket_encode_binary (ws, "\x00\x01\x80\xFF", 4, F_NONE,
                                        &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_ping_pong_exact_bytes)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  static const unsigned char ping[] = { 0x89, 0x03, 'a', 'b', 'c' };
  static const unsigned char pong[] = { 0x8A, 0x03, 'a', 'b', 'c' };
  static const unsigned char ping0[] = { 0x89, 0x00 };
  static const unsigned char pong0[] = { 0x8A, 0x00 };
  char *frame = NULL;
  size_t frame_len = 0;
  int st;

  st = MHD_websocket_encode_ping (ws, "abc", 3, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, ping, sizeof (ping));
  st = MHD_websocket_encode_pong (ws, "abc", 3, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, pong, sizeof (pong));
  st = MHD_websocket_encode_ping (ws, NULL, 0, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, ping0, sizeof (ping0));
  st = MHD_websocket_encode_pong (ws, NULL, 0, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, pong0, sizeof (pong0));
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_close_with_code_and_reason_exact_bytes)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  static const unsigned char want[] = { 0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e' };
  static const unsigned char code_only[] = { 0x88, 0x02, 0x03, 0xE9 };
  char *frame = NULL;
  size_t frame_len = 0;
  int st;

  st = MHD_websocket_encode_close (ws, MHD_WEBSOCKET_CLOSEREASON_REGULAR, "bye",
                                   3, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  st = MHD_websocket_encode_close (ws, MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY,
                                   NULL, 0, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, code_only, sizeof (code_only));
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_close_no_reason_is_empty_frame)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  static const unsigned char want[] = { 0x88, 0x00 };
  char *frame = NULL;
  size_t frame_len = 0;
  int st;

  st = MHD_websocket_encode_close (ws, MHD_WEBSOCKET_CLOSEREASON_NO_REASON,
                                   NULL, 0, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  /* An empty reason string is no reason text either. */
  st = MHD_websocket_encode_close (ws, MHD_WEBSOCKET_CLOSEREASON_NO_REASON, "",
                                   0, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_empty_data_frames)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  static const unsigned char text[] = { 0x81, 0x00 };
  static const unsigned char bin[] = { 0x82, 0x00 };
  char *frame = NULL;
  size_t frame_len = 0;
  int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  int st;

  st =
    MHD_websocket_encode_text (ws, NULL, 0, F_NONE, &frame, &frame_len, &step);
  expect_frame (ws, st, frame, frame_len, text, sizeof (text));
  st = MHD_websocket_encode_text (ws, "", 0, F_NONE, &frame, &frame_len, NULL);
  expect_frame (ws, st, frame, frame_len, text, sizeof (text));
  st = MHD_websocket_encode_binary (ws, NULL, 0, F_NONE, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, bin, sizeof (bin));
  tu_stream_end (ws);
}
END_TEST

/* Every encoder hands back a buffer of frame_len + 1 bytes with a NUL
   after the frame, allocated through the stream's callbacks. */
START_TEST (test_every_encoder_nul_terminates_fresh_buffer)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  unsigned k;
  for (k = 0; k < K_COUNT; k++)
  {
    char *frame = NULL;
    size_t frame_len = 0;
    long live = tu_alloc_live;
    size_t largest;
    int st;
    tu_alloc_largest = 0;
    st = encode ((enum kind) k, ws, "abcdef", 6, F_NONE, &frame, &frame_len);
    ck_assert_msg (ST_OK == st, "%s: status %d", kind_name[k], st);
    ck_assert_ptr_nonnull (frame);
    ck_assert_int_eq ((unsigned char) frame[0], kind_b0[k]);
    ck_assert_int_eq (frame[frame_len], '\0');
    ck_assert_int_eq (tu_alloc_live, live + 1);
    largest = tu_alloc_largest;
    ck_assert_msg (largest >= frame_len + 1, "%s: buffer of %zu for %zu",
                   kind_name[k], largest, frame_len);
    ck_assert_int_eq (MHD_websocket_free (ws, frame), ST_OK);
    ck_assert_int_eq (tu_alloc_live, live);
  }
  tu_stream_end (ws);
}
END_TEST

/* ------------------------------------------------ length encodings */

static const size_t lengths[] = { 0, 1, 125, 126, 65535, 65536, MIB };

/** The header bytes the shortest length form gives (server, binary). */
static size_t
want_header (size_t len, unsigned char h[10])
{
  size_t n = 0;
  unsigned i;
  h[n++] = 0x82;
  if (len <= 125)
    h[n++] = (unsigned char) len;
  else if (len <= 0xFFFF)
  {
    h[n++] = 126;
    h[n++] = (unsigned char) (len >> 8);
    h[n++] = (unsigned char) (len & 0xFF);
  }
  else
  {
    h[n++] = 127;
    for (i = 0; i < 8; i++)
      h[n++] = (unsigned char) (((uint64_t) len >> (56 - 8 * i)) & 0xFF);
  }
  return n;
}

START_TEST (test_length_shortest_form_big_endian)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (lengths) / sizeof (lengths[0]); i++)
  {
    size_t len = lengths[i];
    char *p = binary_payload (len);
    unsigned char h[10];
    size_t hl = want_header (len, h);
    char *frame = NULL;
    size_t frame_len = 0;
    int st =
      MHD_websocket_encode_binary (ws, p, len, F_NONE, &frame, &frame_len);
    ck_assert_int_eq (st, ST_OK);
    ck_assert_msg (frame_len == hl + len, "length %zu: frame of %zu bytes", len,
                   frame_len);
    ck_assert_msg (0 == memcmp (frame, h, hl), "length %zu: wrong header", len);
    ck_assert_msg (0 == memcmp (frame + hl, p, len),
                   "length %zu: wrong payload", len);
    ck_assert_int_eq (frame[frame_len], '\0');
    MHD_websocket_free (ws, frame);
    free (p);
  }
  tu_stream_end (ws);
}
END_TEST

/* The same forms written out, so that a mistake shared by the encoder
   and want_header can not hide. */
START_TEST (test_length_vectors)
{
  static const struct
  {
    size_t len;
    unsigned char h[10];
    size_t hl;
  } v[] = {
    { 125, { 0x82, 0x7D }, 2 },
    { 126, { 0x82, 0x7E, 0x00, 0x7E }, 4 },
    { 65535, { 0x82, 0x7E, 0xFF, 0xFF }, 4 },
    { 65536, { 0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 }, 10 },
    { MIB, { 0x82, 0x7F, 0, 0, 0, 0, 0, 0x10, 0x00, 0x00 }, 10 },
  };
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (v) / sizeof (v[0]); i++)
  {
    char *p = binary_payload (v[i].len);
    char *frame = NULL;
    size_t frame_len = 0;
    int st =
      MHD_websocket_encode_binary (ws, p, v[i].len, F_NONE, &frame, &frame_len);
    ck_assert_int_eq (st, ST_OK);
    ck_assert_uint_eq (frame_len, v[i].hl + v[i].len);
    ck_assert_mem_eq (frame, v[i].h, v[i].hl);
    MHD_websocket_free (ws, frame);
    free (p);
  }
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_length_forms_text_and_client)
{
  unsigned counter;
  struct MHD_WebSocketStream *srv = server_stream ();
  struct MHD_WebSocketStream *cli = client_stream (&counter);
  unsigned nth = 0;
  size_t i;
  for (i = 0; i < sizeof (lengths) / sizeof (lengths[0]); i++)
  {
    size_t len = lengths[i];
    char *p = text_payload (len);
    char *want = malloc (len + 14);
    uint8_t key[4];
    size_t wl;
    char *frame = NULL;
    size_t frame_len = 0;
    int st;

    ck_assert_ptr_nonnull (want);
    wl = tu_frame (want, 0x81, p, len, NULL);
    st =
      MHD_websocket_encode_text (srv, p, len, F_NONE, &frame, &frame_len, NULL);
    ck_assert_int_eq (st, ST_OK);
    ck_assert_uint_eq (frame_len, wl);
    ck_assert_msg (0 == memcmp (frame, want, wl), "server text %zu", len);
    MHD_websocket_free (srv, frame);

    mask_of (nth++, key);
    wl = tu_frame (want, 0x82, p, len, key);
    st = MHD_websocket_encode_binary (cli, p, len, F_NONE, &frame, &frame_len);
    ck_assert_int_eq (st, ST_OK);
    ck_assert_uint_eq (frame_len, wl);
    ck_assert_msg (0 == memcmp (frame, want, wl), "client binary %zu", len);
    ck_assert_int_eq (frame[frame_len], '\0');
    MHD_websocket_free (cli, frame);
    free (want);
    free (p);
  }
  MHD_websocket_stream_free (cli);
  tu_stream_end (srv);
}
END_TEST

/* ------------------------------------------------ fragmentation */

START_TEST (test_fragmentation_first_byte)
{
  static const struct
  {
    int frag;
    unsigned char text;
    unsigned char bin;
  } v[] = {
    { F_NONE, 0x81, 0x82 },
    { F_FIRST, 0x01, 0x02 },
    { F_FOLLOWING, 0x00, 0x00 },
    { F_LAST, 0x80, 0x80 },
  };
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (v) / sizeof (v[0]); i++)
  {
    unsigned char want[4] = { 0, 0x02, 'o', 'k' };
    char *frame = NULL;
    size_t frame_len = 0;
    int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
    int st;

    want[0] = v[i].text;
    st = MHD_websocket_encode_text (ws, "ok", 2, v[i].frag, &frame, &frame_len,
                                    &step);
    expect_frame (ws, st, frame, frame_len, want, sizeof (want));
    want[0] = v[i].bin;
    st =
      MHD_websocket_encode_binary (ws, "ok", 2, v[i].frag, &frame, &frame_len);
    expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  }
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_fragmentation_out_of_range_is_parameter_error)
{
  static const int bad[] = { -1, 4, 5, 16, 255, INT_MAX, INT_MIN };
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (bad) / sizeof (bad[0]); i++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 7;
    int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
    int st = MHD_websocket_encode_text (ws, "ok", 2, bad[i], &frame, &frame_len,
                                        &step);
    expect_no_frame (st, ST_PARAM, frame, frame_len);
    frame = (char *) 1;
    frame_len = 7;
    st = MHD_websocket_encode_binary (ws, "ok", 2, bad[i], &frame, &frame_len);
    expect_no_frame (st, ST_PARAM, frame, frame_len);
  }
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

/* ------------------------------------------------ client masking */

START_TEST (test_client_hello_masked_vector)
{
  unsigned counter;
  struct MHD_WebSocketStream *ws = client_stream (&counter);
  /* "Hello" XOR 11 22 33 44 */
  static const unsigned char want[] = { 0x81, 0x85, 0x11, 0x22, 0x33, 0x44,
                                        0x59, 0x47, 0x5f, 0x28, 0x7e };
  char *frame = NULL;
  size_t frame_len = 0;
  int st = MHD_websocket_encode_text (ws, "Hello", 5, F_NONE, &frame,
                                      &frame_len, NULL);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  ck_assert_uint_eq (counter, 4);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_client_every_encoder_masks)
{
  unsigned counter;
  struct MHD_WebSocketStream *ws = client_stream (&counter);
  unsigned k;
  for (k = 0; k < K_COUNT; k++)
  {
    char want[64];
    char payload[8] = "abcdefg";
    uint8_t key[4];
    size_t wl;
    char *frame = NULL;
    size_t frame_len = 0;
    int st = encode ((enum kind) k, ws, payload, 7, F_NONE, &frame, &frame_len);
    mask_of (k, key);
    if (K_CLOSE == k)
    {
      char cp[9] = "\x03\xE8"
                   "abcdefg";
      wl = tu_frame (want, kind_b0[k], cp, 9, key);
    }
    else
      wl = tu_frame (want, kind_b0[k], payload, 7, key);
    ck_assert_msg (ST_OK == st, "%s: status %d", kind_name[k], st);
    ck_assert_msg (frame_len == wl && 0 == memcmp (frame, want, wl),
                   "%s: not masked with the generator's bytes", kind_name[k]);
    ck_assert_int_eq (frame[frame_len], '\0');
    MHD_websocket_free (ws, frame);
    ck_assert_uint_eq (counter, 4 * (k + 1));
  }
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_client_empty_payload_still_has_mask)
{
  unsigned counter;
  struct MHD_WebSocketStream *ws = client_stream (&counter);
  static const unsigned char want[] = { 0x88, 0x80, 0x11, 0x22, 0x33, 0x44 };
  char *frame = NULL;
  size_t frame_len = 0;
  int st = MHD_websocket_encode_close (ws, MHD_WEBSOCKET_CLOSEREASON_NO_REASON,
                                       NULL, 0, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_client_consecutive_frames_fresh_mask)
{
  unsigned counter;
  struct MHD_WebSocketStream *ws = client_stream (&counter);
  static const unsigned char first[] = { 0x82, 0x82, 0x11, 0x22,
                                         0x33, 0x44, 0x11, 0x22 };
  static const unsigned char second[] = { 0x82, 0x82, 0x55, 0x66,
                                          0x77, 0x88, 0x55, 0x66 };
  char *frame = NULL;
  size_t frame_len = 0;
  int st;

  /* Zero bytes show the key itself in the masked payload. */
  st = MHD_websocket_encode_binary (ws, "\0\0", 2, F_NONE, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, first, sizeof (first));
  st = MHD_websocket_encode_binary (ws, "\0\0", 2, F_NONE, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, second, sizeof (second));
  ck_assert_uint_eq (counter, 8);
  tu_stream_end (ws);
}
END_TEST

/* Server frames are unmasked, so they need no random bytes (contract
   section 4: no per-frame work the original does not need). */
START_TEST (test_server_takes_no_random_bytes)
{
  struct MHD_WebSocketStream *ws = NULL;
  unsigned counter = 0;
  unsigned k;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, MHD_WEBSOCKET_FLAG_SERVER,
                                                0, tu_malloc, tu_realloc,
                                                tu_free, &counter, tu_rng),
                    ST_OK);
  for (k = 0; k < K_COUNT; k++)
  {
    char *frame = NULL;
    size_t frame_len = 0;
    ck_assert_int_eq (
      encode ((enum kind) k, ws, "x", 1, F_NONE, &frame, &frame_len), ST_OK);
    ck_assert_int_eq ((unsigned char) frame[1] & 0x80, 0);
    MHD_websocket_free (ws, frame);
  }
  ck_assert_uint_eq (counter, 0);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_client_failing_rng_gives_memory_error)
{
  struct MHD_WebSocketStream *ws = NULL;
  unsigned k;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, MHD_WEBSOCKET_FLAG_CLIENT,
                                                0, tu_malloc, tu_realloc,
                                                tu_free, NULL, tu_rng_fail),
                    ST_OK);
  for (k = 0; k < K_COUNT; k++)
  {
    long live = tu_alloc_live;
    char *frame = (char *) 1;
    size_t frame_len = 5;
    int st = encode ((enum kind) k, ws, "abc", 3, F_NONE, &frame, &frame_len);
    ck_assert_msg (ST_MEM == st, "%s: status %d", kind_name[k], st);
    ck_assert_ptr_null (frame);
    ck_assert_uint_eq (frame_len, 0);
    ck_assert_int_eq (tu_alloc_live, live);
  }
  tu_stream_end (ws);
}
END_TEST

/* ------------------------------------------------ round trips */

/** Compares two decode results event by event. */
static void
same_result (const struct tu_result *a, const struct tu_result *b,
             const char *how, size_t at)
{
  size_t i;
  ck_assert_msg (a->count == b->count, "%s %zu: %zu events, not %zu", how, at,
                 b->count, a->count);
  for (i = 0; i < a->count; i++)
  {
    ck_assert_msg (
      a->ev[i].status == b->ev[i].status && a->ev[i].len == b->ev[i].len
        && (0 == a->ev[i].len
            || 0 == memcmp (a->ev[i].payload, b->ev[i].payload, a->ev[i].len)),
      "%s %zu: event %zu differs", how, at, i);
  }
  ck_assert_int_eq (a->validity, b->validity);
}

enum split_way
{
  /** Whole, at every split, one byte per call (tu_decode_every_split). */
  SPLIT_ALL,
  /** Whole, 4 KiB and 1000-byte chunks, and every split within 16 bytes
      of a frame boundary (so through every header). */
  SPLIT_SOME,
  /** Whole and 4 KiB chunks. */
  SPLIT_CHUNKS
};

/** Where each frame of a round trip's input starts. */
struct bounds
{
  size_t at[8];
  size_t n;
};

static void
decode_ways (struct tu_result *r, int flags, const char *in, size_t len,
             enum split_way way, const struct bounds *fb)
{
  struct tu_result o;
  size_t at;
  size_t i;
  if (SPLIT_ALL == way)
  {
    tu_decode_every_split (r, flags, 0, in, len);
    return;
  }
  tu_decode (r, flags, 0, in, len, 0, 0);
  tu_decode (&o, flags, 0, in, len, 4096, 4096);
  same_result (r, &o, "4 KiB chunks", len);
  tu_result_free (&o);
  if (SPLIT_CHUNKS == way)
    return;
  tu_decode (&o, flags, 0, in, len, 1000, 1000);
  same_result (r, &o, "1000-byte chunks", len);
  tu_result_free (&o);
  for (at = 1; at < len; at++)
  {
    int near = (at == len / 2);
    for (i = 0; i <= fb->n; i++)
    {
      size_t b = (i < fb->n) ? fb->at[i] : len;
      if (at + 16 >= b && at <= b + 16)
        near = 1;
    }
    if (! near)
      continue;
    tu_decode (&o, flags, 0, in, len, at, 0);
    same_result (r, &o, "split at", at);
    tu_result_free (&o);
  }
}

/**
 * Encodes a message of @a len bytes in @a pieces fragments (1: NONE) on a
 * server or client stream, decodes the frames on a stream of the other
 * role, with and without WANT_FRAGMENTS, and checks the events.
 */
static void
roundtrip (int client, int binary, size_t len, unsigned pieces,
           enum split_way way)
{
  unsigned counter;
  struct MHD_WebSocketStream *ws =
    client ? client_stream (&counter) : server_stream ();
  char *p = binary ? binary_payload (len) : text_payload (len);
  struct buf in = { NULL, 0, 0 };
  size_t cut[6];
  unsigned i;
  int want;
  int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  unsigned base = binary ? 0x2u : 0x1u;
  struct bounds fb;

  ck_assert_uint_le (pieces, 5);
  fb.n = pieces;
  for (i = 0; i <= pieces; i++)
    cut[i] = (size_t) ((uint64_t) len * i / pieces);
  for (i = 0; i < pieces; i++)
  {
    int frag = (1 == pieces)       ? F_NONE
               : (0 == i)          ? F_FIRST
               : (pieces - 1 == i) ? F_LAST
                                   : F_FOLLOWING;
    char *frame = NULL;
    size_t frame_len = 0;
    int st;
    unsigned b0;
    if (binary)
      st = MHD_websocket_encode_binary (ws, p + cut[i], cut[i + 1] - cut[i],
                                        frag, &frame, &frame_len);
    else
      st = MHD_websocket_encode_text (ws, p + cut[i], cut[i + 1] - cut[i], frag,
                                      &frame, &frame_len, &step);
    ck_assert_msg (ST_OK == st, "len %zu piece %u: status %d", len, i, st);
    b0 = (F_NONE == frag)    ? 0x80u | base
         : (F_FIRST == frag) ? base
         : (F_LAST == frag)  ? 0x80u
                             : 0x00u;
    ck_assert_uint_eq ((unsigned char) frame[0], b0);
    ck_assert_uint_eq ((unsigned char) frame[1] & 0x80u, client ? 0x80u : 0);
    fb.at[i] = in.len;
    buf_add (&in, frame, frame_len);
    MHD_websocket_free (ws, frame);
  }
  tu_stream_end (ws);

  for (want = 0; want < 2; want++)
  {
    struct tu_result r;
    int flags = (client ? MHD_WEBSOCKET_FLAG_SERVER : MHD_WEBSOCKET_FLAG_CLIENT)
                | (want ? MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS : 0);
    decode_ways (&r, flags, in.data, in.len, way, &fb);
    ck_assert_int_eq (r.validity, MHD_WEBSOCKET_VALIDITY_VALID);
    if (! want || 1 == pieces)
      tu_expect_one (&r, (int) base, p, len);
    else
    {
      /* A character cut by a fragment boundary arrives, whole, with the
         next fragment. */
      size_t dcut[6];
      for (i = 0; i <= pieces; i++)
      {
        dcut[i] = cut[i];
        while (! binary && dcut[i] > 0 && dcut[i] < len
               && 0x80 == ((unsigned char) p[dcut[i]] & 0xC0))
          dcut[i]--;
      }
      ck_assert_msg (r.count == pieces, "len %zu: %zu events for %u pieces",
                     len, r.count, pieces);
      for (i = 0; i < pieces; i++)
      {
        unsigned stw = base
                       | ((0 == i)            ? 0x10u
                          : (pieces - 1 == i) ? 0x40u
                                              : 0x20u);
        size_t l = dcut[i + 1] - dcut[i];
        ck_assert_msg ((int) stw == r.ev[i].status,
                       "len %zu piece %u: status %d not %u", len, i,
                       r.ev[i].status, stw);
        ck_assert_msg (l == r.ev[i].len, "len %zu piece %u: %zu bytes not %zu",
                       len, i, r.ev[i].len, l);
        ck_assert (0 == l || 0 == memcmp (r.ev[i].payload, p + dcut[i], l));
        ck_assert (0 != l || NULL == r.ev[i].payload);
      }
    }
    tu_result_free (&r);
  }
  free (in.data);
  free (p);
}

/* _i: bit 0 client, bit 1 binary. */
START_TEST (test_roundtrip_small_every_split)
{
  static const size_t sz[] = { 0, 1, 2, 7, 125, 126 };
  static const unsigned pieces[] = { 1, 2, 4 };
  size_t s;
  size_t f;
  for (s = 0; s < sizeof (sz) / sizeof (sz[0]); s++)
    for (f = 0; f < sizeof (pieces) / sizeof (pieces[0]); f++)
      roundtrip (_i & 1, (_i >> 1) & 1, sz[s], pieces[f], SPLIT_ALL);
}
END_TEST

START_TEST (test_roundtrip_64k)
{
  static const size_t sz[] = { 65535, 65536 };
  static const unsigned pieces[] = { 1, 2, 4 };
  size_t s;
  size_t f;
  for (s = 0; s < sizeof (sz) / sizeof (sz[0]); s++)
    for (f = 0; f < sizeof (pieces) / sizeof (pieces[0]); f++)
      roundtrip (_i & 1, (_i >> 1) & 1, sz[s], pieces[f], SPLIT_SOME);
}
END_TEST

START_TEST (test_roundtrip_1mib)
{
  static const unsigned pieces[] = { 1, 2, 5 };
  size_t f;
  for (f = 0; f < sizeof (pieces) / sizeof (pieces[0]); f++)
    roundtrip (_i & 1, (_i >> 1) & 1, MIB, pieces[f], SPLIT_CHUNKS);
}
END_TEST

START_TEST (test_roundtrip_control_frames)
{
  unsigned counter;
  int client;
  for (client = 0; client < 2; client++)
  {
    struct MHD_WebSocketStream *ws =
      client ? client_stream (&counter) : server_stream ();
    int flags = client ? MHD_WEBSOCKET_FLAG_SERVER : MHD_WEBSOCKET_FLAG_CLIENT;
    char *p = binary_payload (125);
    char *frame = NULL;
    size_t frame_len = 0;
    struct tu_result r;
    const char *reason;
    size_t reason_len;
    unsigned short code;

    ck_assert_int_eq (
      MHD_websocket_encode_ping (ws, p, 125, &frame, &frame_len), ST_OK);
    tu_decode_every_split (&r, flags, 0, frame, frame_len);
    tu_expect_one (&r, MHD_WEBSOCKET_STATUS_PING_FRAME, p, 125);
    tu_result_free (&r);
    MHD_websocket_free (ws, frame);

    ck_assert_int_eq (
      MHD_websocket_encode_pong (ws, NULL, 0, &frame, &frame_len), ST_OK);
    tu_decode_every_split (&r, flags, 0, frame, frame_len);
    tu_expect_one (&r, MHD_WEBSOCKET_STATUS_PONG_FRAME, NULL, 0);
    tu_result_free (&r);
    MHD_websocket_free (ws, frame);

    ck_assert_int_eq (MHD_websocket_encode_close (ws, 4321, "\xC3\xA9t\xC3\xA9",
                                                  6, &frame, &frame_len),
                      ST_OK);
    tu_decode_every_split (&r, flags, 0, frame, frame_len);
    ck_assert_uint_eq (r.count, 1);
    ck_assert_int_eq (r.ev[0].status, MHD_WEBSOCKET_STATUS_CLOSE_FRAME);
    ck_assert_int_eq (MHD_websocket_split_close_reason (r.ev[0].payload,
                                                        r.ev[0].len, &code,
                                                        &reason, &reason_len),
                      ST_OK);
    ck_assert_uint_eq (code, 4321);
    ck_assert_uint_eq (reason_len, 6);
    ck_assert_mem_eq (reason, "\xC3\xA9t\xC3\xA9", 6);
    tu_result_free (&r);
    MHD_websocket_free (ws, frame);
    free (p);
    tu_stream_end (ws);
  }
}
END_TEST

/* ------------------------------------------------ parameters */

START_TEST (test_null_ws_is_parameter_error)
{
  unsigned k;
  for (k = 0; k < K_COUNT; k++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 9;
    int st = encode ((enum kind) k, NULL, "a", 1, F_NONE, &frame, &frame_len);
    ck_assert_msg (ST_PARAM == st, "%s: status %d", kind_name[k], st);
    ck_assert_ptr_null (frame);
    ck_assert_uint_eq (frame_len, 0);
  }
}
END_TEST

START_TEST (test_null_frame_is_parameter_error)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  unsigned k;
  for (k = 0; k < K_COUNT; k++)
  {
    size_t frame_len = 9;
    int st = encode ((enum kind) k, ws, "a", 1, F_NONE, NULL, &frame_len);
    ck_assert_msg (ST_PARAM == st, "%s: status %d", kind_name[k], st);
    ck_assert_uint_eq (frame_len, 0);
  }
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_null_frame_len_is_parameter_error)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  unsigned k;
  for (k = 0; k < K_COUNT; k++)
  {
    char *frame = (char *) 1;
    int st = encode ((enum kind) k, ws, "a", 1, F_NONE, &frame, NULL);
    ck_assert_msg (ST_PARAM == st, "%s: status %d", kind_name[k], st);
    ck_assert_ptr_null (frame);
  }
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_null_payload_with_length_is_parameter_error)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  unsigned k;
  for (k = 0; k < K_COUNT; k++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 9;
    int st = encode ((enum kind) k, ws, NULL, 1, F_NONE, &frame, &frame_len);
    ck_assert_msg (ST_PARAM == st, "%s: status %d", kind_name[k], st);
    ck_assert_ptr_null (frame);
    ck_assert_uint_eq (frame_len, 0);
  }
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_null_payload_with_zero_length_is_fine)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  unsigned k;
  for (k = 0; k < K_COUNT; k++)
  {
    char *frame = NULL;
    size_t frame_len = 9;
    int st = encode ((enum kind) k, ws, NULL, 0, F_NONE, &frame, &frame_len);
    ck_assert_msg (ST_OK == st, "%s: status %d", kind_name[k], st);
    ck_assert_uint_eq (frame_len, (K_CLOSE == k) ? 4 : 2);
    ck_assert_uint_eq ((unsigned char) frame[0], kind_b0[k]);
    ck_assert_int_eq (frame[frame_len], '\0');
    MHD_websocket_free (ws, frame);
  }
  tu_stream_end (ws);
}
END_TEST

/* A successful call overwrites stale outputs, and a failing one clears
   them, so a caller never frees a pointer it did not get. */
START_TEST (test_outputs_reset_on_error)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  char *frame = (char *) 1;
  size_t frame_len = 42;
  int st =
    MHD_websocket_encode_text (ws, "\xFF", 1, F_NONE, &frame, &frame_len, NULL);
  expect_no_frame (st, ST_UTF8, frame, frame_len);
  frame = (char *) 1;
  frame_len = 42;
  st = MHD_websocket_encode_ping (ws, "x", 126, &frame, &frame_len);
  expect_no_frame (st, ST_MAX, frame, frame_len);
  tu_stream_end (ws);
}
END_TEST

#if SIZE_MAX > 0x7FFFFFFFFFFFFFFF
START_TEST (test_length_above_2p63_is_size_error_before_reading)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  const char *dummy = unreadable ();
  size_t huge = (size_t) 0x8000000000000000;
  size_t sizes[2];
  unsigned k;
  unsigned j;
  sizes[0] = huge;
  sizes[1] = SIZE_MAX;
  for (j = 0; j < 2; j++)
    for (k = 0; k < K_COUNT; k++)
    {
      char *frame = (char *) 1;
      size_t frame_len = 3;
      int st =
        encode ((enum kind) k, ws, dummy, sizes[j], F_NONE, &frame, &frame_len);
      ck_assert_msg (ST_MAX == st, "%s: status %d", kind_name[k], st);
      ck_assert_ptr_null (frame);
      ck_assert_uint_eq (frame_len, 0);
    }
  /* Fragments too, whatever the utf8_step says. */
  for (k = F_FIRST; k <= F_LAST; k++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 3;
    int step = MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2;
    int st = MHD_websocket_encode_text (ws, dummy, huge, (int) k, &frame,
                                        &frame_len, &step);
    expect_no_frame (st, ST_MAX, frame, frame_len);
    frame = (char *) 1;
    st = MHD_websocket_encode_binary (ws, dummy, huge, (int) k, &frame,
                                      &frame_len);
    expect_no_frame (st, ST_MAX, frame, frame_len);
  }
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

/* 0x7FFFFFFFFFFFFFFF itself is a legal frame length: the encoder goes on
   to allocate (which fails here) instead of calling it too big. */
START_TEST (test_length_2p63_minus_1_is_not_size_error)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  const char *dummy = unreadable ();
  char *frame = (char *) 1;
  size_t frame_len = 3;
  int st;
  tu_alloc_fail_at = tu_alloc_calls;
  tu_alloc_fail_sticky = 1;
  st = MHD_websocket_encode_binary (ws, dummy, (size_t) 0x7FFFFFFFFFFFFFFF,
                                    F_NONE, &frame, &frame_len);
  expect_no_frame (st, ST_MEM, frame, frame_len);
  tu_alloc_fail_at = -1;
  tu_stream_end (ws);
}
END_TEST
#endif

/* ------------------------------------------------ text and UTF-8 */

static const struct
{
  const char *s;
  size_t len;
  const char *what;
} bad_utf8[] = {
  { "\xC0\x80", 2, "overlong NUL (C0)" },
  { "\xC1\xBF", 2, "overlong (C1)" },
  { "\xE0\x80\x80", 3, "overlong 3-byte" },
  { "\xE0\x9F\xBF", 3, "overlong 3-byte, top" },
  { "\xF0\x80\x80\x80", 4, "overlong 4-byte" },
  { "\xF0\x8F\xBF\xBF", 4, "overlong 4-byte, top" },
  { "\xED\xA0\x80", 3, "surrogate D800" },
  { "\xED\xBF\xBF", 3, "surrogate DFFF" },
  { "\xF4\x90\x80\x80", 4, "U+110000" },
  { "\xF5\x80\x80\x80", 4, "F5 lead" },
  { "\x80", 1, "lone continuation" },
  { "a\xBF", 2, "continuation after ASCII" },
  { "\xC3\xA9\x80", 3, "extra continuation" },
  { "\xC0", 1, "C0" },
  { "\xC1", 1, "C1" },
  { "\xF5", 1, "F5" },
  { "\xF8\x88\x80\x80\x80", 5, "F8 (5-byte form)" },
  { "\xFC\x84\x80\x80\x80\x80", 6, "FC (6-byte form)" },
  { "\xFE", 1, "FE" },
  { "\xFF", 1, "FF" },
  { "\xC3"
    "A",
    2, "ASCII after 2-byte lead" },
  { "\xE2\x82"
    "A",
    3, "ASCII inside 3-byte" },
  { "\xF0\x9F\x98"
    "A",
    4, "ASCII inside 4-byte" },
  { "\xE2\xC3\xA9", 3, "lead inside 3-byte" },
  { "valid text, then \xFF at the end", 29, "late FF" },
};

static const struct
{
  const char *s;
  size_t len;
} truncated_utf8[] = {
  { "\xC3", 1 },         { "\xE2", 1 },         { "\xE2\x82", 2 },
  { "\xF0\x9F", 2 },     { "\xF0\x9F\x98", 3 }, { "abc\xE0\xA0", 5 },
  { "\xF4\x8F\xBF", 3 }, { "\xED", 1 },
};

START_TEST (test_text_invalid_utf8_rejected)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (bad_utf8) / sizeof (bad_utf8[0]); i++)
  {
    int frag;
    for (frag = F_NONE; frag <= F_FIRST; frag++)
    {
      char *frame = (char *) 1;
      size_t frame_len = 5;
      int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
      int st = MHD_websocket_encode_text (ws, bad_utf8[i].s, bad_utf8[i].len,
                                          frag, &frame, &frame_len, &step);
      ck_assert_msg (ST_UTF8 == st, "%s (fragmentation %d): status %d",
                     bad_utf8[i].what, frag, st);
      ck_assert_ptr_null (frame);
      ck_assert_uint_eq (frame_len, 0);
    }
  }
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_text_invalid_utf8_rejected_without_step)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (bad_utf8) / sizeof (bad_utf8[0]); i++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 5;
    int st = MHD_websocket_encode_text (ws, bad_utf8[i].s, bad_utf8[i].len,
                                        F_NONE, &frame, &frame_len, NULL);
    ck_assert_msg (ST_UTF8 == st, "%s: status %d", bad_utf8[i].what, st);
    ck_assert_ptr_null (frame);
    ck_assert_uint_eq (frame_len, 0);
  }
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_text_none_must_end_on_complete_character)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (truncated_utf8) / sizeof (truncated_utf8[0]); i++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 5;
    int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
    int st =
      MHD_websocket_encode_text (ws, truncated_utf8[i].s, truncated_utf8[i].len,
                                 F_NONE, &frame, &frame_len, &step);
    ck_assert_msg (ST_UTF8 == st, "truncated %zu: status %d", i, st);
    ck_assert_ptr_null (frame);
    ck_assert_uint_eq (frame_len, 0);
    frame = (char *) 1;
    st =
      MHD_websocket_encode_text (ws, truncated_utf8[i].s, truncated_utf8[i].len,
                                 F_NONE, &frame, &frame_len, NULL);
    expect_no_frame (st, ST_UTF8, frame, frame_len);
  }
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_text_valid_boundaries_accepted)
{
  static const struct
  {
    const char *s;
    size_t len;
  } good[] = {
    { "\x00", 1 },
    { "\x7F", 1 },
    { "\xC2\x80", 2 },
    { "\xDF\xBF", 2 },
    { "\xE0\xA0\x80", 3 },
    { "\xEC\xBF\xBF", 3 },
    { "\xED\x80\x80", 3 },
    { "\xED\x9F\xBF", 3 },
    { "\xEE\x80\x80", 3 },
    { "\xEF\xBF\xBF", 3 },
    { "\xF0\x90\x80\x80", 4 },
    { "\xF1\x80\x80\x80", 4 },
    { "\xF3\xBF\xBF\xBF", 4 },
    { "\xF4\x80\x80\x80", 4 },
    { "\xF4\x8F\xBF\xBF", 4 },
  };
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (good) / sizeof (good[0]); i++)
  {
    unsigned char want[8];
    char *frame = NULL;
    size_t frame_len = 0;
    int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
    int st = MHD_websocket_encode_text (ws, good[i].s, good[i].len, F_NONE,
                                        &frame, &frame_len, &step);
    want[0] = 0x81;
    want[1] = (unsigned char) good[i].len;
    memcpy (want + 2, good[i].s, good[i].len);
    ck_assert_msg (ST_OK == st, "valid %zu: status %d", i, st);
    expect_frame (ws, st, frame, frame_len, want, good[i].len + 2);
    ck_assert_int_eq (step, MHD_WEBSOCKET_UTF8STEP_NORMAL);
  }
  tu_stream_end (ws);
}
END_TEST

/* A bad byte deep inside a long text (past any word-at-a-time fast
   path's alignment) is still found. */
START_TEST (test_text_invalid_byte_anywhere_in_long_text)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t len = 300;
  char *p = malloc (len);
  size_t at;
  ck_assert_ptr_nonnull (p);
  for (at = 0; at < len; at++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 5;
    int st;
    memset (p, 'a', len);
    p[at] = (char) 0xFF;
    st =
      MHD_websocket_encode_text (ws, p, len, F_NONE, &frame, &frame_len, NULL);
    ck_assert_msg (ST_UTF8 == st, "FF at %zu: status %d", at, st);
    ck_assert_ptr_null (frame);
    p[at] = (char) 0x80;
    st =
      MHD_websocket_encode_text (ws, p, len, F_NONE, &frame, &frame_len, NULL);
    ck_assert_msg (ST_UTF8 == st, "80 at %zu: status %d", at, st);
  }
  free (p);
  tu_stream_end (ws);
}
END_TEST

/**
 * For each fragmentation from @a frag_lo to @a frag_hi: with the step
 * UTF2TAIL_1OF1, the one byte @a ok is accepted and the step returns to
 * NORMAL; then, with step @a bad_step, a lone tail byte 0xA9 is a UTF-8
 * error without a frame.
 */
static void
check_utf8_step_per_fragmentation (int frag_lo, int frag_hi, const char *ok,
                                   int bad_step)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  int frag;
  for (frag = frag_lo; frag <= frag_hi; frag++)
  {
    char *frame = NULL;
    size_t frame_len = 0;
    int step = MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1;
    int st =
      MHD_websocket_encode_text (ws, ok, 1, frag, &frame, &frame_len, &step);
    ck_assert_msg (ST_OK == st, "fragmentation %d: status %d", frag, st);
    ck_assert_int_eq (step, MHD_WEBSOCKET_UTF8STEP_NORMAL);
    MHD_websocket_free (ws, frame);
    step = bad_step;
    frame = (char *) 1;
    st = MHD_websocket_encode_text (ws, "\xA9", 1, frag, &frame, &frame_len,
                                    &step);
    expect_no_frame (st, ST_UTF8, frame, frame_len);
  }
  tu_stream_end (ws);
}

START_TEST (test_utf8_step_reset_by_first_and_none)
{
  /* "a" is invalid after a lead byte: only a reset accepts it.  And a
     tail byte alone is invalid even if the step expects one. */
  check_utf8_step_per_fragmentation (F_NONE, F_FIRST, "a",
                                     MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1);
}
END_TEST

START_TEST (test_utf8_step_continued_by_following_and_last)
{
  /* The step carries over: the tail byte completes the character.  From
     NORMAL, the same byte is a lone continuation. */
  check_utf8_step_per_fragmentation (F_FOLLOWING, F_LAST, "\xA9",
                                     MHD_WEBSOCKET_UTF8STEP_NORMAL);
}
END_TEST

START_TEST (test_utf8_step_euro_split_first_last)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  static const unsigned char f1[] = { 0x01, 0x03, 'a', 0xE2, 0x82 };
  static const unsigned char f2[] = { 0x80, 0x01, 0xAC };
  char *frame = NULL;
  size_t frame_len = 0;
  int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  int st = MHD_websocket_encode_text (ws, "a\xE2\x82", 3, F_FIRST, &frame,
                                      &frame_len, &step);
  expect_frame (ws, st, frame, frame_len, f1, sizeof (f1));
  ck_assert_int_eq (step, MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2);
  st = MHD_websocket_encode_text (ws, "\xAC", 1, F_LAST, &frame, &frame_len,
                                  &step);
  expect_frame (ws, st, frame, frame_len, f2, sizeof (f2));
  ck_assert_int_eq (step, MHD_WEBSOCKET_UTF8STEP_NORMAL);
  tu_stream_end (ws);
}
END_TEST

/* Each contract state name, reached from a fresh message. */
START_TEST (test_utf8_step_state_after_prefix)
{
  static const struct
  {
    const char *s;
    size_t len;
    int step;
  } v[] = {
    { "abc", 3, MHD_WEBSOCKET_UTF8STEP_NORMAL },
    { "\xC3\xA9", 2, MHD_WEBSOCKET_UTF8STEP_NORMAL },
    { "\xC2", 1, MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1 },
    { "\xDF", 1, MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1 },
    { "\xE0", 1, MHD_WEBSOCKET_UTF8STEP_UTF3TAIL1_1OF2 },
    { "\xED", 1, MHD_WEBSOCKET_UTF8STEP_UTF3TAIL2_1OF2 },
    { "\xE1", 1, MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2 },
    { "\xEC", 1, MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2 },
    { "\xEE", 1, MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2 },
    { "\xEF", 1, MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2 },
    { "\xE0\xA0", 2, MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2 },
    { "\xED\x9F", 2, MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2 },
    { "\xE1\x80", 2, MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2 },
    { "\xF0", 1, MHD_WEBSOCKET_UTF8STEP_UTF4TAIL1_1OF3 },
    { "\xF4", 1, MHD_WEBSOCKET_UTF8STEP_UTF4TAIL2_1OF3 },
    { "\xF1", 1, MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_1OF3 },
    { "\xF3", 1, MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_1OF3 },
    { "\xF0\x90", 2, MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3 },
    { "\xF4\x8F", 2, MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3 },
    { "\xF2\x80", 2, MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3 },
    { "\xF2\x80\x80", 3, MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3 },
    { "x\xF0\x9F\x98", 4, MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3 },
  };
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (v) / sizeof (v[0]); i++)
  {
    char *frame = NULL;
    size_t frame_len = 0;
    int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
    int st = MHD_websocket_encode_text (ws, v[i].s, v[i].len, F_FIRST, &frame,
                                        &frame_len, &step);
    ck_assert_msg (ST_OK == st, "prefix %zu: status %d", i, st);
    ck_assert_msg (v[i].step == step, "prefix %zu: step %d, not %d", i, step,
                   v[i].step);
    MHD_websocket_free (ws, frame);
  }
  tu_stream_end (ws);
}
END_TEST

/* After each partial state, the byte ranges the contract allows. */
START_TEST (test_utf8_step_continuation_ranges)
{
  static const struct
  {
    int step;
    unsigned char lo;
    unsigned char hi;
  } v[] = {
    { MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1, 0x80, 0xBF },
    { MHD_WEBSOCKET_UTF8STEP_UTF3TAIL1_1OF2, 0xA0, 0xBF },
    { MHD_WEBSOCKET_UTF8STEP_UTF3TAIL2_1OF2, 0x80, 0x9F },
    { MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2, 0x80, 0xBF },
    { MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2, 0x80, 0xBF },
    { MHD_WEBSOCKET_UTF8STEP_UTF4TAIL1_1OF3, 0x90, 0xBF },
    { MHD_WEBSOCKET_UTF8STEP_UTF4TAIL2_1OF3, 0x80, 0x8F },
    { MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_1OF3, 0x80, 0xBF },
    { MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3, 0x80, 0xBF },
    { MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3, 0x80, 0xBF },
  };
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  unsigned b;
  for (i = 0; i < sizeof (v) / sizeof (v[0]); i++)
    for (b = 0; b < 256; b++)
    {
      char c = (char) b;
      char *frame = (char *) 1;
      size_t frame_len = 5;
      int step = v[i].step;
      int st = MHD_websocket_encode_text (ws, &c, 1, F_FOLLOWING, &frame,
                                          &frame_len, &step);
      int ok = (b >= v[i].lo && b <= v[i].hi);
      ck_assert_msg ((ok ? ST_OK : ST_UTF8) == st,
                     "step %d then byte %02X: status %d", v[i].step, b, st);
      if (ok)
        MHD_websocket_free (ws, frame);
      else
        expect_no_frame (st, ST_UTF8, frame, frame_len);
    }
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_utf8_step_e0_then_80_rejected)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  int frag;
  for (frag = F_FOLLOWING; frag <= F_LAST; frag++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 5;
    int step = MHD_WEBSOCKET_UTF8STEP_UTF3TAIL1_1OF2;
    int st = MHD_websocket_encode_text (ws, "\x80\x80", 2, frag, &frame,
                                        &frame_len, &step);
    expect_no_frame (st, ST_UTF8, frame, frame_len);
    step = MHD_WEBSOCKET_UTF8STEP_UTF3TAIL1_1OF2;
    st = MHD_websocket_encode_text (ws, "\xA0\x80", 2, frag, &frame, &frame_len,
                                    &step);
    ck_assert_int_eq (st, ST_OK);
    ck_assert_int_eq (step, MHD_WEBSOCKET_UTF8STEP_NORMAL);
    MHD_websocket_free (ws, frame);
  }
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_utf8_step_none_leaves_normal)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  char *frame = NULL;
  size_t frame_len = 0;
  int step = MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3;
  int st = MHD_websocket_encode_text (ws, "\xE2\x82\xAC", 3, F_NONE, &frame,
                                      &frame_len, &step);
  ck_assert_int_eq (st, ST_OK);
  ck_assert_int_eq (step, MHD_WEBSOCKET_UTF8STEP_NORMAL);
  MHD_websocket_free (ws, frame);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_utf8_step_following_empty_keeps_state)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  static const unsigned char want[] = { 0x00, 0x00 };
  char *frame = NULL;
  size_t frame_len = 0;
  int step = MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3;
  int st = MHD_websocket_encode_text (ws, NULL, 0, F_FOLLOWING, &frame,
                                      &frame_len, &step);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  ck_assert_int_eq (step, MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3);
  tu_stream_end (ws);
}
END_TEST

/* As in the original: a utf8_step outside the enum, continued by
   FOLLOWING or LAST, is a broken sequence, not a parameter error; no
   frame, and the caller's variable is left alone. */
START_TEST (test_utf8_step_outside_enum_is_utf8_error)
{
  static const int bad[] = { -1, MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3 + 1, 99,
                             INT_MIN, INT_MAX };
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  int frag;
  for (i = 0; i < sizeof (bad) / sizeof (bad[0]); i++)
    for (frag = F_FOLLOWING; frag <= F_LAST; frag++)
    {
      char *frame = (char *) 1;
      size_t frame_len = 5;
      int step = bad[i];
      int st =
        MHD_websocket_encode_text (ws, "a", 1, frag, &frame, &frame_len, &step);
      expect_no_frame (st, ST_UTF8, frame, frame_len);
      ck_assert_int_eq (step, bad[i]);
    }
  /* FIRST and NONE start over at NORMAL, whatever the variable held. */
  for (i = 0; i < sizeof (bad) / sizeof (bad[0]); i++)
    for (frag = F_NONE; frag <= F_FIRST; frag++)
    {
      char *frame = NULL;
      size_t frame_len = 0;
      int step = bad[i];
      int st =
        MHD_websocket_encode_text (ws, "a", 1, frag, &frame, &frame_len, &step);
      ck_assert_int_eq (st, ST_OK);
      ck_assert_int_eq (step, MHD_WEBSOCKET_UTF8STEP_NORMAL);
      MHD_websocket_free (ws, frame);
    }
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

/* An empty LAST fragment is the message's empty final frame (FIN,
   continuation, length 0), OK whatever utf8_step holds, which it leaves
   alone, as in the original. */
START_TEST (test_empty_last_fragment_is_ok)
{
  static const unsigned char want[] = { 0x80, 0x00 };
  static const int steps[] = { MHD_WEBSOCKET_UTF8STEP_NORMAL,
                               MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1,
                               MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3, -1, 11 };
  struct MHD_WebSocketStream *ws = server_stream ();
  unsigned counter;
  struct MHD_WebSocketStream *cl = client_stream (&counter);
  size_t i;
  for (i = 0; i < sizeof (steps) / sizeof (steps[0]); i++)
  {
    char *frame = NULL;
    size_t frame_len = 0;
    int step = steps[i];
    int st = MHD_websocket_encode_text (ws, NULL, 0, F_LAST, &frame, &frame_len,
                                        &step);
    expect_frame (ws, st, frame, frame_len, want, sizeof (want));
    ck_assert_int_eq (step, steps[i]);
    step = steps[i];
    st =
      MHD_websocket_encode_text (ws, "", 0, F_LAST, &frame, &frame_len, &step);
    expect_frame (ws, st, frame, frame_len, want, sizeof (want));
    /* Masked too for a client: FIN, continuation, mask bit, length 0. */
    step = steps[i];
    st = MHD_websocket_encode_text (cl, NULL, 0, F_LAST, &frame, &frame_len,
                                    &step);
    ck_assert_int_eq (st, ST_OK);
    ck_assert_uint_eq (frame_len, 6);
    ck_assert_uint_eq ((unsigned char) frame[0], 0x80);
    ck_assert_uint_eq ((unsigned char) frame[1], 0x80);
    MHD_websocket_free (cl, frame);
  }
  tu_stream_end (cl);
  tu_stream_end (ws);
}
END_TEST

#if SIZE_MAX > 0x7FFFFFFFFFFFFFFF
/* No utf8_step on a fragmented call: PARAMETER_ERROR, even when the
   length is also too big (the original checked parameters first). */
START_TEST (test_missing_step_comes_before_size_check)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  const char *dummy = unreadable ();
  int frag;
  for (frag = F_FIRST; frag <= F_LAST; frag++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 3;
    int st = MHD_websocket_encode_text (ws, dummy, SIZE_MAX, frag, &frame,
                                        &frame_len, NULL);
    expect_no_frame (st, ST_PARAM, frame, frame_len);
  }
  /* NONE needs no utf8_step: there the size check answers. */
  {
    char *frame = (char *) 1;
    size_t frame_len = 3;
    int st = MHD_websocket_encode_text (ws, dummy, SIZE_MAX, F_NONE, &frame,
                                        &frame_len, NULL);
    expect_no_frame (st, ST_MAX, frame, frame_len);
  }
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST
#endif

START_TEST (test_last_fragment_must_end_on_complete_character)
{
  static const struct
  {
    int step;
    const char *s;
    size_t len;
  } v[] = {
    { MHD_WEBSOCKET_UTF8STEP_NORMAL, "\xE2\x82", 2 },
    { MHD_WEBSOCKET_UTF8STEP_NORMAL, "ab\xC3", 3 },
    { MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2, "\x82", 1 },
    { MHD_WEBSOCKET_UTF8STEP_UTF4TAIL1_1OF3, "\x9F\x98", 2 },
    /* (An empty LAST fragment is not judged: see
       test_empty_last_fragment_is_ok.) */
  };
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (v) / sizeof (v[0]); i++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 5;
    int step = v[i].step;
    int st = MHD_websocket_encode_text (ws, v[i].s, v[i].len, F_LAST, &frame,
                                        &frame_len, &step);
    ck_assert_msg (ST_UTF8 == st, "case %zu: status %d", i, st);
    ck_assert_ptr_null (frame);
    ck_assert_uint_eq (frame_len, 0);
  }
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_fragmented_text_without_step_is_parameter_error)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  int frag;
  for (frag = F_FIRST; frag <= F_LAST; frag++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 5;
    int st =
      MHD_websocket_encode_text (ws, "ok", 2, frag, &frame, &frame_len, NULL);
    ck_assert_msg (ST_PARAM == st, "fragmentation %d: status %d", frag, st);
    ck_assert_ptr_null (frame);
    ck_assert_uint_eq (frame_len, 0);
  }
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

/** Encodes @a frags as FIRST, FOLLOWING..., LAST and decodes them back. */
static void
split_char_message (struct MHD_WebSocketStream *ws, const char *const *frags,
                    const size_t *lens, size_t n, const char *whole,
                    size_t whole_len, const char *what)
{
  struct buf in = { NULL, 0, 0 };
  struct tu_result r;
  int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  size_t i;
  for (i = 0; i < n; i++)
  {
    int frag = (0 == i) ? F_FIRST : (n - 1 == i) ? F_LAST : F_FOLLOWING;
    char *frame = NULL;
    size_t frame_len = 0;
    unsigned char want[16];
    int st = MHD_websocket_encode_text (ws, frags[i], lens[i], frag, &frame,
                                        &frame_len, &step);
    ck_assert_msg (ST_OK == st, "%s, fragment %zu: status %d", what, i, st);
    want[0] = (F_FIRST == frag) ? 0x01 : (F_LAST == frag) ? 0x80 : 0x00;
    want[1] = (unsigned char) lens[i];
    memcpy (want + 2, frags[i], lens[i]);
    ck_assert_uint_eq (frame_len, lens[i] + 2);
    ck_assert_msg (0 == memcmp (frame, want, frame_len), "%s, fragment %zu",
                   what, i);
    buf_add (&in, frame, frame_len);
    MHD_websocket_free (ws, frame);
  }
  ck_assert_int_eq (step, MHD_WEBSOCKET_UTF8STEP_NORMAL);
  tu_decode (&r, MHD_WEBSOCKET_FLAG_CLIENT, 0, in.data, in.len, 0, 0);
  tu_expect_one (&r, MHD_WEBSOCKET_STATUS_TEXT_FRAME, whole, whole_len);
  tu_result_free (&r);
  free (in.data);
}

/* Every character form, cut into fragments at every combination of
   positions, with and without ASCII around it. */
START_TEST (test_character_split_across_fragments_every_way)
{
  static const char *const chars[] = {
    "\xC2\x80",         "\xDF\xBF",         "\xE0\xA0\x80",
    "\xE2\x82\xAC",     "\xED\x9F\xBF",     "\xEF\xBF\xBF",
    "\xF0\x90\x80\x80", "\xF0\x9F\x98\x80", "\xF3\xA0\x80\x81",
    "\xF4\x8F\xBF\xBF",
  };
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t c;
  for (c = 0; c < sizeof (chars) / sizeof (chars[0]); c++)
  {
    size_t cl = strlen (chars[c]);
    unsigned cuts;
    for (cuts = 0; cuts < (1u << (cl - 1)); cuts++)
    {
      const char *frags[8];
      size_t lens[8];
      size_t n = 0;
      size_t start = 0;
      size_t pos;
      char whole[8];
      char what[64];
      /* Bit j of cuts: cut after byte j. */
      for (pos = 1; pos <= cl; pos++)
        if (pos == cl || 0 != (cuts & (1u << (pos - 1))))
        {
          frags[n + 1] = chars[c] + start;
          lens[n + 1] = pos - start;
          n++;
          start = pos;
        }
      snprintf (what, sizeof (what), "char %zu cuts %u", c, cuts);
      /* "<", the pieces, ">" */
      frags[0] = "<";
      lens[0] = 1;
      frags[n + 1] = ">";
      lens[n + 1] = 1;
      whole[0] = '<';
      memcpy (whole + 1, chars[c], cl);
      whole[cl + 1] = '>';
      split_char_message (ws, frags, lens, n + 2, whole, cl + 2, what);
      /* The pieces alone: FIRST starts and LAST ends the character. */
      if (n >= 2)
        split_char_message (ws, frags + 1, lens + 1, n, chars[c], cl, what);
    }
  }
  tu_stream_end (ws);
}
END_TEST

/* ------------------------------------------------ binary */

START_TEST (test_binary_not_validated)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (bad_utf8) / sizeof (bad_utf8[0]); i++)
  {
    unsigned char want[40];
    int frag;
    for (frag = F_NONE; frag <= F_LAST; frag++)
    {
      char *frame = NULL;
      size_t frame_len = 0;
      int st = MHD_websocket_encode_binary (ws, bad_utf8[i].s, bad_utf8[i].len,
                                            frag, &frame, &frame_len);
      want[0] = (F_NONE == frag)    ? 0x82
                : (F_FIRST == frag) ? 0x02
                : (F_LAST == frag)  ? 0x80
                                    : 0x00;
      want[1] = (unsigned char) bad_utf8[i].len;
      memcpy (want + 2, bad_utf8[i].s, bad_utf8[i].len);
      expect_frame (ws, st, frame, frame_len, want, bad_utf8[i].len + 2);
    }
  }
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_ping_pong_not_validated)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  static const unsigned char want[] = { 0x89, 0x03, 0xFF, 0xC0, 0x80 };
  char *frame = NULL;
  size_t frame_len = 0;
  int st =
    MHD_websocket_encode_ping (ws, "\xFF\xC0\x80", 3, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  st = MHD_websocket_encode_pong (ws, "\xFF\xC0\x80", 3, &frame, &frame_len);
  ck_assert_int_eq (st, ST_OK);
  ck_assert_mem_eq (frame + 2, "\xFF\xC0\x80", 3);
  MHD_websocket_free (ws, frame);
  tu_stream_end (ws);
}
END_TEST

/* ------------------------------------------------ ping and pong */

START_TEST (test_ping_pong_payload_limit_125)
{
  unsigned counter;
  struct MHD_WebSocketStream *ws;
  char *p = binary_payload (200);
  int client;
  for (client = 0; client < 2; client++)
  {
    unsigned k;
    ws = client ? client_stream (&counter) : server_stream ();
    for (k = K_PING; k <= K_PONG; k++)
    {
      char *frame = NULL;
      size_t frame_len = 0;
      int st = encode ((enum kind) k, ws, p, 125, F_NONE, &frame, &frame_len);
      ck_assert_int_eq (st, ST_OK);
      ck_assert_uint_eq (frame_len, 125 + 2 + (client ? 4 : 0));
      ck_assert_uint_eq ((unsigned char) frame[1], (client ? 0x80u : 0) | 125);
      MHD_websocket_free (ws, frame);
      frame = (char *) 1;
      frame_len = 5;
      st = encode ((enum kind) k, ws, p, 126, F_NONE, &frame, &frame_len);
      ck_assert_msg (ST_MAX == st, "%s 126: status %d", kind_name[k], st);
      ck_assert_ptr_null (frame);
      ck_assert_uint_eq (frame_len, 0);
      st = encode ((enum kind) k, ws, p, 200, F_NONE, &frame, &frame_len);
      expect_no_frame (st, ST_MAX, frame, frame_len);
    }
    tu_stream_end (ws);
  }
  free (p);
}
END_TEST

/* ------------------------------------------------ close */

START_TEST (test_close_no_reason_with_text_is_parameter_error)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  char *frame = (char *) 1;
  size_t frame_len = 5;
  int st = MHD_websocket_encode_close (ws, MHD_WEBSOCKET_CLOSEREASON_NO_REASON,
                                       "why", 3, &frame, &frame_len);
  expect_no_frame (st, ST_PARAM, frame, frame_len);
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_close_code_below_1000_is_parameter_error)
{
  static const unsigned short codes[] = { 1, 2, 500, 998, 999 };
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (codes) / sizeof (codes[0]); i++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 5;
    int st =
      MHD_websocket_encode_close (ws, codes[i], NULL, 0, &frame, &frame_len);
    ck_assert_msg (ST_PARAM == st, "code %u: status %d", codes[i], st);
    ck_assert_ptr_null (frame);
    ck_assert_uint_eq (frame_len, 0);
    frame = (char *) 1;
    st = MHD_websocket_encode_close (ws, codes[i], "r", 1, &frame, &frame_len);
    expect_no_frame (st, ST_PARAM, frame, frame_len);
  }
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_close_codes_from_1000_encoded_as_given)
{
  static const unsigned short codes[] = { 1000, 1004, 1005, 1006, 1015,
                                          2999, 3000, 4999, 5000, 65535 };
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (codes) / sizeof (codes[0]); i++)
  {
    unsigned char want[4];
    char *frame = NULL;
    size_t frame_len = 0;
    int st =
      MHD_websocket_encode_close (ws, codes[i], NULL, 0, &frame, &frame_len);
    want[0] = 0x88;
    want[1] = 0x02;
    want[2] = (unsigned char) (codes[i] >> 8);
    want[3] = (unsigned char) (codes[i] & 0xFF);
    ck_assert_msg (ST_OK == st, "code %u: status %d", codes[i], st);
    expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  }
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_close_reason_limit_123)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  char reason[130];
  unsigned char want[2 + 125];
  char *frame = NULL;
  size_t frame_len = 0;
  int st;

  memset (reason, 'r', sizeof (reason));
  want[0] = 0x88;
  want[1] = 125;
  want[2] = 0x0F;
  want[3] = 0xA0;
  memcpy (want + 4, reason, 123);
  st = MHD_websocket_encode_close (ws, 4000, reason, 123, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  frame = (char *) 1;
  st = MHD_websocket_encode_close (ws, 4000, reason, 124, &frame, &frame_len);
  expect_no_frame (st, ST_MAX, frame, frame_len);
  st = MHD_websocket_encode_close (ws, 4000, reason, 130, &frame, &frame_len);
  expect_no_frame (st, ST_MAX, frame, frame_len);
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_close_reason_utf8_validated)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  size_t i;
  for (i = 0; i < sizeof (bad_utf8) / sizeof (bad_utf8[0]); i++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 5;
    int st = MHD_websocket_encode_close (ws, 1000, bad_utf8[i].s,
                                         bad_utf8[i].len, &frame, &frame_len);
    ck_assert_msg (ST_UTF8 == st, "%s: status %d", bad_utf8[i].what, st);
    ck_assert_ptr_null (frame);
    ck_assert_uint_eq (frame_len, 0);
  }
  for (i = 0; i < sizeof (truncated_utf8) / sizeof (truncated_utf8[0]); i++)
  {
    char *frame = (char *) 1;
    size_t frame_len = 5;
    int st = MHD_websocket_encode_close (
      ws, 1000, truncated_utf8[i].s, truncated_utf8[i].len, &frame, &frame_len);
    expect_no_frame (st, ST_UTF8, frame, frame_len);
  }
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_close_reason_multibyte_accepted)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  static const unsigned char want[] = { 0x88, 0x0B, 0x03, 0xE8, 0xF0,
                                        0x9F, 0x98, 0x80, 0xE2, 0x82,
                                        0xAC, 0xC3, 0xA9 };
  char *frame = NULL;
  size_t frame_len = 0;
  int st = MHD_websocket_encode_close (
    ws, 1000, "\xF0\x9F\x98\x80\xE2\x82\xAC\xC3\xA9", 9, &frame, &frame_len);
  expect_frame (ws, st, frame, frame_len, want, sizeof (want));
  tu_stream_end (ws);
}
END_TEST

/* ------------------------------------------------ stream state */

START_TEST (test_encoding_works_on_invalidated_stream)
{
  unsigned counter;
  int client;
  for (client = 0; client < 2; client++)
  {
    struct MHD_WebSocketStream *ws =
      client ? client_stream (&counter) : server_stream ();
    unsigned k;
    ck_assert_int_eq (MHD_websocket_stream_invalidate (ws), ST_OK);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                      MHD_WEBSOCKET_VALIDITY_INVALID);
    for (k = 0; k < K_COUNT; k++)
    {
      char *frame = NULL;
      size_t frame_len = 0;
      char want[32];
      uint8_t key[4];
      size_t wl;
      int st = encode ((enum kind) k, ws, "hi", 2, F_NONE, &frame, &frame_len);
      mask_of (k, key);
      if (K_CLOSE == k)
        wl = tu_frame (want, kind_b0[k], "\x03\xE8hi", 4, client ? key : NULL);
      else
        wl = tu_frame (want, kind_b0[k], "hi", 2, client ? key : NULL);
      ck_assert_msg (ST_OK == st, "%s: status %d", kind_name[k], st);
      expect_frame (ws, st, frame, frame_len, want, wl);
    }
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                      MHD_WEBSOCKET_VALIDITY_INVALID);
    tu_stream_end (ws);
  }
}
END_TEST

/** Encodes one frame of every kind (and a fragment) on @a ws. */
static void
encode_everything (struct MHD_WebSocketStream *ws)
{
  unsigned k;
  for (k = 0; k < K_COUNT; k++)
  {
    char *frame = NULL;
    size_t frame_len = 0;
    ck_assert_int_eq (
      encode ((enum kind) k, ws, "zz", 2, F_NONE, &frame, &frame_len), ST_OK);
    MHD_websocket_free (ws, frame);
    ck_assert_int_eq (
      encode ((enum kind) k, ws, "zz", 2, F_FIRST, &frame, &frame_len), ST_OK);
    MHD_websocket_free (ws, frame);
  }
}

/** Feeds @a len bytes; expects them all consumed with status @a want. */
static void
feed (struct MHD_WebSocketStream *ws, const char *in, size_t len, int want,
      const char *payload, size_t plen)
{
  size_t rd = 0;
  char *p = NULL;
  size_t pl = 0;
  int st = MHD_websocket_decode (ws, in, len, &rd, &p, &pl);
  ck_assert_int_eq (st, want);
  ck_assert_uint_eq (rd, len);
  ck_assert_uint_eq (pl, plen);
  if (plen > 0)
    ck_assert_mem_eq (p, payload, plen);
  MHD_websocket_free (ws, p);
}

START_TEST (test_encoding_does_not_touch_decoder_state)
{
  static const uint8_t key[4] = { 0xA1, 0xB2, 0xC3, 0xD4 };
  char in[512];
  char msg[200];
  size_t n = 0;
  size_t a;
  size_t b;
  size_t c;
  struct MHD_WebSocketStream *ws = server_stream ();

  memset (msg, 'm', sizeof (msg));
  /* A 200-byte text frame cut inside the header and the payload. */
  n = tu_frame (in, 0x81, msg, 200, key);
  feed (ws, in, 3, ST_OK, NULL, 0);
  encode_everything (ws);
  feed (ws, in + 3, 100, ST_OK, NULL, 0);
  encode_everything (ws);
  feed (ws, in + 103, n - 103, MHD_WEBSOCKET_STATUS_TEXT_FRAME, msg, 200);
  encode_everything (ws);

  /* A fragmented message with a character cut between fragments, and a
     ping in between. */
  a = tu_frame (in, 0x01, "ab\xE2\x82", 4, key);
  b = tu_frame (in + a, 0x89, "p", 1, key);
  c = tu_frame (in + a + b, 0x80,
                "\xAC"
                "cd",
                3, key);
  feed (ws, in, a, ST_OK, NULL, 0);
  encode_everything (ws);
  feed (ws, in + a, b, MHD_WEBSOCKET_STATUS_PING_FRAME, "p", 1);
  encode_everything (ws);
  feed (ws, in + a + b, 4, ST_OK, NULL, 0);
  encode_everything (ws);
  feed (ws, in + a + b + 4, c - 4, MHD_WEBSOCKET_STATUS_TEXT_FRAME,
        "ab\xE2\x82\xAC"
        "cd",
        7);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_VALID);

  /* After a close, encoding does not bring data frames back. */
  n = tu_frame (in, 0x88, "\x03\xE8", 2, key);
  feed (ws, in, n, MHD_WEBSOCKET_STATUS_CLOSE_FRAME, "\x03\xE8", 2);
  encode_everything (ws);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_ONLY_VALID_FOR_CONTROL_FRAMES);
  tu_stream_end (ws);
}
END_TEST

/* ------------------------------------------------ memory */

START_TEST (test_allocation_failure_gives_memory_error)
{
  unsigned counter;
  int client;
  for (client = 0; client < 2; client++)
  {
    struct MHD_WebSocketStream *ws =
      client ? client_stream (&counter) : server_stream ();
    unsigned k;
    int sticky;
    for (sticky = 0; sticky < 2; sticky++)
      for (k = 0; k < K_COUNT; k++)
      {
        long live = tu_alloc_live;
        char *frame = (char *) 1;
        size_t frame_len = 5;
        int st;
        tu_alloc_fail_at = tu_alloc_calls;
        tu_alloc_fail_sticky = sticky;
        st = encode ((enum kind) k, ws, "hello", 5, F_NONE, &frame, &frame_len);
        tu_alloc_fail_at = -1;
        tu_alloc_fail_sticky = 0;
        ck_assert_msg (ST_MEM == st, "%s: status %d", kind_name[k], st);
        ck_assert_ptr_null (frame);
        ck_assert_uint_eq (frame_len, 0);
        ck_assert_int_eq (tu_alloc_live, live);
        /* The stream is unharmed: the next call succeeds. */
        st = encode ((enum kind) k, ws, "hello", 5, F_NONE, &frame, &frame_len);
        ck_assert_int_eq (st, ST_OK);
        MHD_websocket_free (ws, frame);
      }
    tu_stream_end (ws);
  }
}
END_TEST

START_TEST (test_allocation_failure_fragmented_text)
{
  struct MHD_WebSocketStream *ws = server_stream ();
  char *frame = (char *) 1;
  size_t frame_len = 5;
  int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  int st;
  tu_alloc_fail_at = tu_alloc_calls;
  st = MHD_websocket_encode_text (ws, "a\xE2", 2, F_FIRST, &frame, &frame_len,
                                  &step);
  expect_no_frame (st, ST_MEM, frame, frame_len);
  ck_assert_int_eq (tu_alloc_live, 0);
  /* Retrying the same fragment works. */
  step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  st = MHD_websocket_encode_text (ws, "a\xE2", 2, F_FIRST, &frame, &frame_len,
                                  &step);
  ck_assert_int_eq (st, ST_OK);
  ck_assert_int_eq (step, MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2);
  MHD_websocket_free (ws, frame);
  tu_stream_end (ws);
}
END_TEST

/* ------------------------------------------------ suite */

static Suite *
encode_suite (void)
{
  Suite *s = suite_create ("encode");
  TCase *tc;

  tc = tcase_create ("frame bytes");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_text_hello_exact_bytes);
  tcase_add_test (tc, test_text_without_utf8_step_exact_bytes);
  tcase_add_test (tc, test_binary_exact_bytes);
  tcase_add_test (tc, test_ping_pong_exact_bytes);
  tcase_add_test (tc, test_close_with_code_and_reason_exact_bytes);
  tcase_add_test (tc, test_close_no_reason_is_empty_frame);
  tcase_add_test (tc, test_empty_data_frames);
  tcase_add_test (tc, test_every_encoder_nul_terminates_fresh_buffer);
  suite_add_tcase (s, tc);

  tc = tcase_create ("length encoding");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_set_timeout (tc, 30);
  tcase_add_test (tc, test_length_shortest_form_big_endian);
  tcase_add_test (tc, test_length_vectors);
  tcase_add_test (tc, test_length_forms_text_and_client);
  suite_add_tcase (s, tc);

  tc = tcase_create ("fragmentation");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_fragmentation_first_byte);
  tcase_add_test (tc, test_fragmentation_out_of_range_is_parameter_error);
  suite_add_tcase (s, tc);

  tc = tcase_create ("client masking");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_client_hello_masked_vector);
  tcase_add_test (tc, test_client_every_encoder_masks);
  tcase_add_test (tc, test_client_empty_payload_still_has_mask);
  tcase_add_test (tc, test_client_consecutive_frames_fresh_mask);
  tcase_add_test (tc, test_server_takes_no_random_bytes);
  tcase_add_test (tc, test_client_failing_rng_gives_memory_error);
  suite_add_tcase (s, tc);

  tc = tcase_create ("round trips");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_set_timeout (tc, 60);
  tcase_add_loop_test (tc, test_roundtrip_small_every_split, 0, 4);
  tcase_add_loop_test (tc, test_roundtrip_64k, 0, 4);
  tcase_add_loop_test (tc, test_roundtrip_1mib, 0, 4);
  tcase_add_test (tc, test_roundtrip_control_frames);
  suite_add_tcase (s, tc);

  tc = tcase_create ("parameters");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_null_ws_is_parameter_error);
  tcase_add_test (tc, test_null_frame_is_parameter_error);
  tcase_add_test (tc, test_null_frame_len_is_parameter_error);
  tcase_add_test (tc, test_null_payload_with_length_is_parameter_error);
  tcase_add_test (tc, test_null_payload_with_zero_length_is_fine);
  tcase_add_test (tc, test_outputs_reset_on_error);
#if SIZE_MAX > 0x7FFFFFFFFFFFFFFF
  tcase_add_test (tc, test_length_above_2p63_is_size_error_before_reading);
  tcase_add_test (tc, test_length_2p63_minus_1_is_not_size_error);
#endif
  suite_add_tcase (s, tc);

  tc = tcase_create ("text utf8");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_set_timeout (tc, 30);
  tcase_add_test (tc, test_text_invalid_utf8_rejected);
  tcase_add_test (tc, test_text_invalid_utf8_rejected_without_step);
  tcase_add_test (tc, test_text_none_must_end_on_complete_character);
  tcase_add_test (tc, test_text_valid_boundaries_accepted);
  tcase_add_test (tc, test_text_invalid_byte_anywhere_in_long_text);
  tcase_add_test (tc, test_utf8_step_reset_by_first_and_none);
  tcase_add_test (tc, test_utf8_step_continued_by_following_and_last);
  tcase_add_test (tc, test_utf8_step_euro_split_first_last);
  tcase_add_test (tc, test_utf8_step_state_after_prefix);
  tcase_add_test (tc, test_utf8_step_continuation_ranges);
  tcase_add_test (tc, test_utf8_step_e0_then_80_rejected);
  tcase_add_test (tc, test_utf8_step_none_leaves_normal);
  tcase_add_test (tc, test_utf8_step_following_empty_keeps_state);
  tcase_add_test (tc, test_utf8_step_outside_enum_is_utf8_error);
  tcase_add_test (tc, test_empty_last_fragment_is_ok);
#if SIZE_MAX > 0x7FFFFFFFFFFFFFFF
  tcase_add_test (tc, test_missing_step_comes_before_size_check);
#endif
  tcase_add_test (tc, test_last_fragment_must_end_on_complete_character);
  tcase_add_test (tc, test_fragmented_text_without_step_is_parameter_error);
  tcase_add_test (tc, test_character_split_across_fragments_every_way);
  suite_add_tcase (s, tc);

  tc = tcase_create ("binary and control");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_binary_not_validated);
  tcase_add_test (tc, test_ping_pong_not_validated);
  tcase_add_test (tc, test_ping_pong_payload_limit_125);
  tcase_add_test (tc, test_close_no_reason_with_text_is_parameter_error);
  tcase_add_test (tc, test_close_code_below_1000_is_parameter_error);
  tcase_add_test (tc, test_close_codes_from_1000_encoded_as_given);
  tcase_add_test (tc, test_close_reason_limit_123);
  tcase_add_test (tc, test_close_reason_utf8_validated);
  tcase_add_test (tc, test_close_reason_multibyte_accepted);
  suite_add_tcase (s, tc);

  tc = tcase_create ("stream state");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_encoding_works_on_invalidated_stream);
  tcase_add_test (tc, test_encoding_does_not_touch_decoder_state);
  suite_add_tcase (s, tc);

  tc = tcase_create ("memory");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_allocation_failure_gives_memory_error);
  tcase_add_test (tc, test_allocation_failure_fragmented_text);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (encode_suite ());
  int failed;
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (failed > 0) ? EXIT_FAILURE : EXIT_SUCCESS;
}
