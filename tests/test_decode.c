/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_decode.c
 * @brief Check suite for MHD_websocket_decode() (contract section 3,
 *        "Decoding") and MHD_websocket_split_close_reason(): RFC 6455
 *        vectors, framing, every protocol error with its offset, UTF-8
 *        validation, size limits, fragments, control and close frames,
 *        client mode.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include "microhttpd_ws.h"
#include "testutil.h"

#define ST_OK MHD_WEBSOCKET_STATUS_OK
#define ST_TEXT MHD_WEBSOCKET_STATUS_TEXT_FRAME
#define ST_BIN MHD_WEBSOCKET_STATUS_BINARY_FRAME
#define ST_CLOSE MHD_WEBSOCKET_STATUS_CLOSE_FRAME
#define ST_PING MHD_WEBSOCKET_STATUS_PING_FRAME
#define ST_PONG MHD_WEBSOCKET_STATUS_PONG_FRAME
#define ST_TEXT_FIRST MHD_WEBSOCKET_STATUS_TEXT_FIRST_FRAGMENT
#define ST_BIN_FIRST MHD_WEBSOCKET_STATUS_BINARY_FIRST_FRAGMENT
#define ST_TEXT_NEXT MHD_WEBSOCKET_STATUS_TEXT_NEXT_FRAGMENT
#define ST_BIN_NEXT MHD_WEBSOCKET_STATUS_BINARY_NEXT_FRAGMENT
#define ST_TEXT_LAST MHD_WEBSOCKET_STATUS_TEXT_LAST_FRAGMENT
#define ST_BIN_LAST MHD_WEBSOCKET_STATUS_BINARY_LAST_FRAGMENT
#define ST_PROTO MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR
#define ST_BROKEN MHD_WEBSOCKET_STATUS_STREAM_BROKEN
#define ST_PARAM MHD_WEBSOCKET_STATUS_PARAMETER_ERROR
#define ST_MAX MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED
#define ST_UTF8 MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR

#define V_INVALID MHD_WEBSOCKET_VALIDITY_INVALID
#define V_VALID MHD_WEBSOCKET_VALIDITY_VALID
#define V_CONTROL MHD_WEBSOCKET_VALIDITY_ONLY_VALID_FOR_CONTROL_FRAMES

#define F_SERVER MHD_WEBSOCKET_FLAG_SERVER
#define F_CLIENT MHD_WEBSOCKET_FLAG_CLIENT
#define F_FRAG MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS
#define F_CLOSE MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR

/* First header bytes: FIN bit plus opcode. */
#define FIN 0x80u
#define OP_CONT 0x0u
#define OP_TEXT 0x1u
#define OP_BIN 0x2u
#define OP_CLOSE 0x8u
#define OP_PING 0x9u
#define OP_PONG 0xAu

#define MIB (1024u * 1024u)

/** The masking key of RFC 6455 section 5.7. */
static const uint8_t MK[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* ------------------------------------------------------------ helpers */

/** A growing byte buffer to assemble input streams. */
struct bb
{
  unsigned char *d;
  size_t n;
  size_t cap;
};

static void
bb_reserve (struct bb *b, size_t more)
{
  if (b->n + more <= b->cap)
    return;
  while (b->n + more > b->cap)
    b->cap = (0 == b->cap) ? 256 : 2 * b->cap;
  b->d = realloc (b->d, b->cap);
  ck_assert_ptr_nonnull (b->d);
}

/** Appends raw bytes. */
static void
bb_raw (struct bb *b, const void *p, size_t n)
{
  bb_reserve (b, n);
  if (n > 0)
    memcpy (b->d + b->n, p, n);
  b->n += n;
}

/** Appends one frame; masked with MK when @a masked. */
static void
bb_frame (struct bb *b, unsigned b0, const void *p, size_t len, int masked)
{
  bb_reserve (b, len + 14);
  b->n += tu_frame (b->d + b->n, b0, p, len, masked ? MK : NULL);
}

/** Appends a masked frame (what a server stream receives). */
static void
bb_m (struct bb *b, unsigned b0, const void *p, size_t len)
{
  bb_frame (b, b0, p, len, 1);
}

/** Appends a masked frame whose payload is a C string. */
static void
bb_ms (struct bb *b, unsigned b0, const char *s)
{
  bb_frame (b, b0, s, strlen (s), 1);
}

/** Appends an unmasked frame (what a client stream receives). */
static void
bb_u (struct bb *b, unsigned b0, const void *p, size_t len)
{
  bb_frame (b, b0, p, len, 0);
}

static void
bb_free (struct bb *b)
{
  free (b->d);
  b->d = NULL;
  b->n = b->cap = 0;
}

/** Asserts that event @a i of @a r has this status and payload. */
static void
expect_ev (const struct tu_result *r, size_t i, int status, const void *p,
           size_t len)
{
  ck_assert_msg (i < r->count, "event %zu missing (only %zu)", i, r->count);
  ck_assert_msg (r->ev[i].status == status, "event %zu: status %d, want %d", i,
                 r->ev[i].status, status);
  ck_assert_msg (r->ev[i].len == len, "event %zu: length %zu, want %zu", i,
                 r->ev[i].len, len);
  if (0 == len)
    ck_assert_ptr_null (r->ev[i].payload);
  else
    ck_assert_mem_eq (r->ev[i].payload, p, len);
}

/** Asserts that event @a i is a string payload with status @a status. */
static void
expect_evs (const struct tu_result *r, size_t i, int status, const char *s)
{
  expect_ev (r, i, status, s, strlen (s));
}

/**
 * Asserts that @a r ends with error @a status as its event number @a i
 * (the last), revealed at absolute offset @a offset, with no payload and
 * the stream invalid.
 */
static void
expect_err (const struct tu_result *r, size_t i, int status, size_t offset)
{
  ck_assert_msg (r->count == i + 1, "%zu events, want %zu", r->count, i + 1);
  ck_assert_msg (r->ev[i].status == status, "status %d, want %d",
                 r->ev[i].status, status);
  ck_assert_msg (r->ev[i].offset == offset, "error offset %zu, want %zu",
                 r->ev[i].offset, offset);
  ck_assert_ptr_null (r->ev[i].payload);
  ck_assert_uint_eq (r->ev[i].len, 0);
  ck_assert_int_eq (r->validity, V_INVALID);
}

/** Decodes @a b on a server stream at every split, expects one error. */
static void
server_error (const struct bb *b, int flags, size_t max, int status,
              size_t offset)
{
  struct tu_result r;
  tu_decode_every_split (&r, flags, max, b->d, b->n);
  expect_err (&r, 0, status, offset);
  tu_result_free (&r);
}

/** Asserts that two results hold the same events and validity. */
static void
same_result (const struct tu_result *a, const struct tu_result *b,
             const char *how)
{
  size_t i;
  ck_assert_msg (a->count == b->count, "%s: %zu events instead of %zu", how,
                 b->count, a->count);
  for (i = 0; i < a->count; i++)
  {
    ck_assert_msg (a->ev[i].status == b->ev[i].status,
                   "%s: event %zu status %d instead of %d", how, i,
                   b->ev[i].status, a->ev[i].status);
    ck_assert_msg (a->ev[i].len == b->ev[i].len,
                   "%s: event %zu length %zu instead of %zu", how, i,
                   b->ev[i].len, a->ev[i].len);
    ck_assert_msg (
      (NULL == a->ev[i].payload) == (NULL == b->ev[i].payload)
        && (NULL == a->ev[i].payload
            || 0 == memcmp (a->ev[i].payload, b->ev[i].payload, a->ev[i].len)),
      "%s: event %zu payload differs", how, i);
    if (a->ev[i].status < 0)
      ck_assert_msg (a->ev[i].offset == b->ev[i].offset,
                     "%s: error offset %zu instead of %zu", how,
                     b->ev[i].offset, a->ev[i].offset);
  }
  ck_assert_msg (a->validity == b->validity, "%s: validity %d instead of %d",
                 how, b->validity, a->validity);
  ck_assert_uint_eq (a->consumed, b->consumed);
}

/**
 * For inputs too big for tu_decode_every_split: decodes whole, then in
 * 4 KiB chunks and a few odd chunk sizes, and asserts the same events.
 * Leaves the whole-input result in @a r.
 */
static void
decode_chunked (struct tu_result *r, int flags, size_t max, const void *data,
                size_t len)
{
  static const size_t firsts[] = { 4096, 1, 7, 1000, 65537, 2 };
  /* Every decode call costs a few Check assertions (each a write to
     Check's pipe), so tiny steps are kept for inputs below 100 KB. */
  static const size_t steps[] = { 4096, 4093, 999, 65535, 131071, 3 };
  struct tu_result other;
  char how[64];
  size_t i;

  tu_decode (r, flags, max, data, len, 0, 0);
  for (i = 0; i < sizeof (firsts) / sizeof (firsts[0]); i++)
  {
    size_t step = steps[i];
    if (step < 16 && len > 100000)
      step = 1021;
    tu_decode (&other, flags, max, data, len, firsts[i], step);
    snprintf (how, sizeof (how), "first %zu step %zu", firsts[i], step);
    same_result (r, &other, how);
    tu_result_free (&other);
  }
}

/** One raw decode call; returns the status, fills the outputs. */
static int
dec (struct MHD_WebSocketStream *ws, const void *p, size_t len, size_t *rd,
     char **payload, size_t *plen)
{
  return MHD_websocket_decode (ws, p, len, rd, payload, plen);
}

static void
setup (void)
{
  tu_alloc_reset ();
}

/* ------------------------------------------------------------ basics */

START_TEST (test_rfc_single_frame_unmasked_hello_client)
{
  static const unsigned char in[] = {
    0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f
  };
  struct tu_result r;
  tu_decode_every_split (&r, F_CLIENT, 0, in, sizeof (in));
  tu_expect_one (&r, ST_TEXT, "Hello", 5);
  ck_assert_int_eq (r.validity, V_VALID);
  ck_assert_uint_eq (r.consumed, sizeof (in));
  tu_result_free (&r);
}
END_TEST

START_TEST (test_rfc_single_frame_masked_hello_server)
{
  static const unsigned char in[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                      0x7f, 0x9f, 0x4d, 0x51, 0x58 };
  struct tu_result r;
  struct bb b = { 0 };
  /* The helper must build exactly the RFC's bytes. */
  bb_ms (&b, FIN | OP_TEXT, "Hello");
  ck_assert_uint_eq (b.n, sizeof (in));
  ck_assert_mem_eq (b.d, in, sizeof (in));
  tu_decode_every_split (&r, F_SERVER, 0, in, sizeof (in));
  tu_expect_one (&r, ST_TEXT, "Hello", 5);
  ck_assert_int_eq (r.validity, V_VALID);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_rfc_fragmented_unmasked_hello_client)
{
  static const unsigned char in[] = { 0x01, 0x03, 0x48, 0x65, 0x6c,
                                      0x80, 0x02, 0x6c, 0x6f };
  struct tu_result r;
  tu_decode_every_split (&r, F_CLIENT, 0, in, sizeof (in));
  tu_expect_one (&r, ST_TEXT, "Hello", 5);
  tu_result_free (&r);
  tu_decode_every_split (&r, F_CLIENT | F_FRAG, 0, in, sizeof (in));
  ck_assert_uint_eq (r.count, 2);
  expect_evs (&r, 0, ST_TEXT_FIRST, "Hel");
  expect_evs (&r, 1, ST_TEXT_LAST, "lo");
  tu_result_free (&r);
}
END_TEST

START_TEST (test_rfc_unmasked_ping_and_masked_pong)
{
  static const unsigned char ping[] = {
    0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f
  };
  static const unsigned char pong[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                        0x7f, 0x9f, 0x4d, 0x51, 0x58 };
  struct tu_result r;
  tu_decode_every_split (&r, F_CLIENT, 0, ping, sizeof (ping));
  tu_expect_one (&r, ST_PING, "Hello", 5);
  ck_assert_int_eq (r.validity, V_VALID);
  tu_result_free (&r);
  tu_decode_every_split (&r, F_SERVER, 0, pong, sizeof (pong));
  tu_expect_one (&r, ST_PONG, "Hello", 5);
  ck_assert_int_eq (r.validity, V_VALID);
  tu_result_free (&r);
}
END_TEST

START_TEST (test_rfc_256_byte_binary_16bit_length)
{
  unsigned char in[4 + 256];
  unsigned char data[256];
  struct tu_result r;
  size_t i;
  for (i = 0; i < 256; i++)
    data[i] = (unsigned char) i;
  in[0] = 0x82;
  in[1] = 0x7E;
  in[2] = 0x01;
  in[3] = 0x00;
  memcpy (in + 4, data, 256);
  tu_decode_every_split (&r, F_CLIENT, 0, in, sizeof (in));
  tu_expect_one (&r, ST_BIN, data, 256);
  tu_result_free (&r);
}
END_TEST

START_TEST (test_rfc_64kib_binary_64bit_length)
{
  static const unsigned char hdr[] = { 0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0 };
  size_t n = 65536;
  unsigned char *in = malloc (sizeof (hdr) + n);
  struct tu_result r;
  size_t i;
  ck_assert_ptr_nonnull (in);
  memcpy (in, hdr, sizeof (hdr));
  for (i = 0; i < n; i++)
    in[sizeof (hdr) + i] = (unsigned char) (i * 7 + 3);
  decode_chunked (&r, F_CLIENT, 0, in, sizeof (hdr) + n);
  tu_expect_one (&r, ST_BIN, in + sizeof (hdr), n);
  tu_result_free (&r);
  free (in);
}
END_TEST

START_TEST (test_outputs_reset_first)
{
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  size_t rd = 99;
  char *payload = (char *) &rd;
  size_t plen = 99;
  /* Nothing to decode: outputs must still be cleared. */
  ck_assert_int_eq (dec (ws, "", 0, &rd, &payload, &plen), ST_OK);
  ck_assert_uint_eq (rd, 0);
  ck_assert_ptr_null (payload);
  ck_assert_uint_eq (plen, 0);
  /* Also on a parameter error (NULL buffer with length). */
  rd = 99;
  payload = (char *) &rd;
  plen = 99;
  ck_assert_int_eq (dec (ws, NULL, 3, &rd, &payload, &plen), ST_PARAM);
  ck_assert_uint_eq (rd, 0);
  ck_assert_ptr_null (payload);
  ck_assert_uint_eq (plen, 0);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_parameter_errors)
{
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  static const unsigned char in[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                      0x7f, 0x9f, 0x4d, 0x51, 0x58 };
  const char *p = (const char *) in;
  size_t rd = 99;
  char *payload = NULL;
  size_t plen = 99;
  ck_assert_int_eq (dec (NULL, p, sizeof (in), &rd, &payload, &plen), ST_PARAM);
  ck_assert_int_eq (dec (ws, p, sizeof (in), NULL, &payload, &plen), ST_PARAM);
  ck_assert_int_eq (dec (ws, p, sizeof (in), &rd, NULL, &plen), ST_PARAM);
  ck_assert_int_eq (dec (ws, p, sizeof (in), &rd, &payload, NULL), ST_PARAM);
  ck_assert_int_eq (dec (ws, NULL, 1, &rd, &payload, &plen), ST_PARAM);
  /* None of these consumed anything: the frame still decodes whole. */
  ck_assert_int_eq (dec (ws, p, sizeof (in), &rd, &payload, &plen), ST_TEXT);
  ck_assert_uint_eq (rd, sizeof (in));
  ck_assert_uint_eq (plen, 5);
  ck_assert_str_eq (payload, "Hello");
  MHD_websocket_free (ws, payload);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_VALID);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
}
END_TEST

START_TEST (test_null_buffer_with_zero_length_is_ok)
{
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  size_t rd = 99;
  char *payload = (char *) &rd;
  size_t plen = 99;
  ck_assert_int_eq (dec (ws, NULL, 0, &rd, &payload, &plen), ST_OK);
  ck_assert_uint_eq (rd, 0);
  ck_assert_ptr_null (payload);
  ck_assert_uint_eq (plen, 0);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_VALID);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
}
END_TEST

/** Payload of @a n bytes: a repeating pattern that is also ASCII text. */
static unsigned char *
pattern (size_t n)
{
  unsigned char *p = malloc (n + 1);
  size_t i;
  ck_assert_ptr_nonnull (p);
  for (i = 0; i < n; i++)
    p[i] = (unsigned char) ('A' + (i * 7) % 26);
  return p;
}

/** A text and a binary frame of @a n bytes decode, at every split. */
static void
size_roundtrip_every_split (size_t n)
{
  unsigned char *p = pattern (n);
  struct bb b = { 0 };
  struct tu_result r;
  bb_m (&b, FIN | OP_TEXT, p, n);
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  tu_expect_one (&r, ST_TEXT, p, n);
  ck_assert_uint_eq (r.consumed, b.n);
  tu_result_free (&r);
  b.n = 0;
  bb_u (&b, FIN | OP_BIN, p, n);
  tu_decode_every_split (&r, F_CLIENT, 0, b.d, b.n);
  tu_expect_one (&r, ST_BIN, p, n);
  tu_result_free (&r);
  bb_free (&b);
  free (p);
}

/** Like size_roundtrip_every_split, for big sizes (chunked feeding). */
static void
size_roundtrip_chunked (size_t n)
{
  unsigned char *p = pattern (n);
  struct bb b = { 0 };
  struct tu_result r;
  bb_m (&b, FIN | OP_TEXT, p, n);
  decode_chunked (&r, F_SERVER, 0, b.d, b.n);
  tu_expect_one (&r, ST_TEXT, p, n);
  tu_result_free (&r);
  b.n = 0;
  bb_u (&b, FIN | OP_BIN, p, n);
  decode_chunked (&r, F_CLIENT, 0, b.d, b.n);
  tu_expect_one (&r, ST_BIN, p, n);
  tu_result_free (&r);
  bb_free (&b);
  free (p);
}

START_TEST (test_payload_size_1)
{
  size_roundtrip_every_split (1);
}
END_TEST

START_TEST (test_payload_size_125_last_7bit_length)
{
  size_roundtrip_every_split (125);
}
END_TEST

START_TEST (test_payload_size_126_first_16bit_length)
{
  size_roundtrip_every_split (126);
}
END_TEST

START_TEST (test_payload_size_65535_last_16bit_length)
{
  size_roundtrip_chunked (65535);
}
END_TEST

START_TEST (test_payload_size_65536_first_64bit_length)
{
  size_roundtrip_chunked (65536);
}
END_TEST

START_TEST (test_payload_size_1mib)
{
  size_roundtrip_chunked (MIB);
}
END_TEST

START_TEST (test_empty_payload_gives_null_and_frame_status)
{
  static const unsigned ops[] = { OP_TEXT, OP_BIN, OP_PING, OP_PONG, OP_CLOSE };
  static const int want[] = { ST_TEXT, ST_BIN, ST_PING, ST_PONG, ST_CLOSE };
  size_t i;
  for (i = 0; i < 5; i++)
  {
    struct bb b = { 0 };
    struct tu_result r;
    bb_m (&b, FIN | ops[i], NULL, 0);
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    tu_expect_one (&r, want[i], NULL, 0);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_payload_is_nul_terminated_and_freed_by_stream)
{
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  struct bb b = { 0 };
  size_t rd;
  char *payload;
  size_t plen;
  bb_ms (&b, FIN | OP_BIN, "abc");
  ck_assert_int_eq (dec (ws, b.d, b.n, &rd, &payload, &plen), ST_BIN);
  ck_assert_uint_eq (plen, 3);
  ck_assert_ptr_nonnull (payload);
  ck_assert_int_eq (payload[3], '\0');
  ck_assert_str_eq (payload, "abc");
  /* Allocated through the stream's callbacks: stream + payload alive. */
  ck_assert_int_ge (tu_alloc_live, 1);
  {
    long live = tu_alloc_live;
    ck_assert_int_eq (MHD_websocket_free (ws, payload), ST_OK);
    ck_assert_int_eq (tu_alloc_live, live - 1);
  }
  tu_stream_end (ws);
  bb_free (&b);
}
END_TEST

START_TEST (test_returns_ok_when_input_consumed_without_frame)
{
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  struct bb b = { 0 };
  size_t rd;
  char *payload;
  size_t plen;
  size_t i;
  bb_ms (&b, FIN | OP_TEXT, "Hello");
  /* Every proper prefix is swallowed whole with OK. */
  ck_assert_int_eq (dec (ws, b.d, b.n - 1, &rd, &payload, &plen), ST_OK);
  ck_assert_uint_eq (rd, b.n - 1);
  ck_assert_ptr_null (payload);
  ck_assert_uint_eq (plen, 0);
  ck_assert_int_eq (dec (ws, b.d + b.n - 1, 1, &rd, &payload, &plen), ST_TEXT);
  ck_assert_uint_eq (rd, 1);
  ck_assert_str_eq (payload, "Hello");
  MHD_websocket_free (ws, payload);
  /* Byte by byte: OK for each but the last. */
  for (i = 0; i + 1 < b.n; i++)
  {
    ck_assert_int_eq (dec (ws, b.d + i, 1, &rd, &payload, &plen), ST_OK);
    ck_assert_uint_eq (rd, 1);
  }
  ck_assert_int_eq (dec (ws, b.d + i, 1, &rd, &payload, &plen), ST_TEXT);
  ck_assert_str_eq (payload, "Hello");
  MHD_websocket_free (ws, payload);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  bb_free (&b);
}
END_TEST

START_TEST (test_returns_after_one_frame_rest_in_next_call)
{
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  struct bb b = { 0 };
  size_t l1, l2, l3;
  size_t rd;
  char *payload;
  size_t plen;
  bb_ms (&b, FIN | OP_TEXT, "one");
  l1 = b.n;
  bb_ms (&b, FIN | OP_PING, "two!");
  l2 = b.n - l1;
  bb_ms (&b, FIN | OP_BIN, "three");
  l3 = b.n - l1 - l2;
  /* Plus the first 3 bytes of a fourth frame. */
  bb_ms (&b, FIN | OP_TEXT, "four");
  b.n = l1 + l2 + l3 + 3;

  ck_assert_int_eq (dec (ws, b.d, b.n, &rd, &payload, &plen), ST_TEXT);
  ck_assert_uint_eq (rd, l1);
  ck_assert_str_eq (payload, "one");
  MHD_websocket_free (ws, payload);
  ck_assert_int_eq (dec (ws, b.d + l1, b.n - l1, &rd, &payload, &plen),
                    ST_PING);
  ck_assert_uint_eq (rd, l2);
  ck_assert_str_eq (payload, "two!");
  MHD_websocket_free (ws, payload);
  ck_assert_int_eq (
    dec (ws, b.d + l1 + l2, b.n - l1 - l2, &rd, &payload, &plen), ST_BIN);
  ck_assert_uint_eq (rd, l3);
  ck_assert_str_eq (payload, "three");
  MHD_websocket_free (ws, payload);
  ck_assert_int_eq (dec (ws, b.d + l1 + l2 + l3, 3, &rd, &payload, &plen),
                    ST_OK);
  ck_assert_uint_eq (rd, 3);
  ck_assert_ptr_null (payload);
  tu_stream_end (ws);
  bb_free (&b);
}
END_TEST

START_TEST (test_several_frames_in_one_buffer_every_split)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, FIN | OP_TEXT, "first");
  bb_m (&b, FIN | OP_BIN, NULL, 0);
  bb_ms (&b, FIN | OP_PONG, "p");
  bb_ms (&b, FIN | OP_TEXT, "\xC3\xA9t\xC3\xA9");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 4);
  expect_evs (&r, 0, ST_TEXT, "first");
  expect_ev (&r, 1, ST_BIN, NULL, 0);
  expect_evs (&r, 2, ST_PONG, "p");
  expect_evs (&r, 3, ST_TEXT, "\xC3\xA9t\xC3\xA9");
  ck_assert_int_eq (r.validity, V_VALID);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_unmasking_every_length_and_key)
{
  /* Word-wise unmasking must agree with the byte-wise definition for
     every length and every key rotation. */
  static const uint8_t keys[][4] = { { 0x00, 0x00, 0x00, 0x00 },
                                     { 0xFF, 0xFF, 0xFF, 0xFF },
                                     { 0x01, 0x23, 0x45, 0x67 },
                                     { 0x80, 0x7F, 0xA5, 0x5A } };
  unsigned char data[80];
  unsigned char in[80 + 14];
  size_t k, n, i;
  for (i = 0; i < sizeof (data); i++)
    data[i] = (unsigned char) (i * 37 + 11);
  for (k = 0; k < 4; k++)
    for (n = 1; n <= sizeof (data); n++)
    {
      struct tu_result r;
      size_t len = tu_frame (in, FIN | OP_BIN, data, n, keys[k]);
      tu_decode (&r, F_SERVER, 0, in, len, 0, 0);
      tu_expect_one (&r, ST_BIN, data, n);
      tu_result_free (&r);
      /* Also with the payload arriving at odd offsets. */
      tu_decode (&r, F_SERVER, 0, in, len, 7, 3);
      tu_expect_one (&r, ST_BIN, data, n);
      tu_result_free (&r);
    }
}
END_TEST

START_TEST (test_memory_error_keeps_stream_valid)
{
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  struct bb b = { 0 };
  size_t rd;
  char *payload = (char *) &rd;
  size_t plen = 5;
  bb_ms (&b, FIN | OP_TEXT, "Hello");
  tu_alloc_fail_at = tu_alloc_calls;
  tu_alloc_fail_sticky = 1;
  ck_assert_int_eq (dec (ws, b.d, b.n, &rd, &payload, &plen),
                    MHD_WEBSOCKET_STATUS_MEMORY_ERROR);
  ck_assert_ptr_null (payload);
  ck_assert_uint_eq (plen, 0);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_VALID);
  tu_alloc_fail_at = -1;
  tu_stream_end (ws);
  bb_free (&b);
}
END_TEST

/* ------------------------------------------------------------ framing */

START_TEST (test_client_rejects_masked_frame)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, FIN | OP_TEXT, "Hello");
  tu_decode_every_split (&r, F_CLIENT, 0, b.d, b.n);
  expect_err (&r, 0, ST_PROTO, 1);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_mask_mismatch_on_control_frames)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_u (&b, FIN | OP_PING, "x", 1);
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  expect_err (&r, 0, ST_PROTO, 1);
  tu_result_free (&r);
  b.n = 0;
  bb_ms (&b, FIN | OP_CLOSE, "\x03\xE8");
  tu_decode_every_split (&r, F_CLIENT, 0, b.d, b.n);
  expect_err (&r, 0, ST_PROTO, 1);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

/** Decodes raw header bytes (+ mask + payload bytes) on a server. */
static void
raw_server_error (const unsigned char *hdr, size_t hlen, size_t payload,
                  int status, size_t offset)
{
  struct bb b = { 0 };
  size_t i;
  bb_raw (&b, hdr, hlen);
  bb_raw (&b, MK, 4);
  for (i = 0; i < payload; i++)
    bb_raw (&b, "x", 1);
  server_error (&b, F_SERVER, 0, status, offset);
  bb_free (&b);
}

START_TEST (test_nonminimal_16bit_length_rejected)
{
  unsigned char h[4] = { 0x82, 0xFE, 0x00, 0x00 };
  static const unsigned lens[] = { 0, 1, 5, 125 };
  size_t i;
  for (i = 0; i < 4; i++)
  {
    h[3] = (unsigned char) lens[i];
    /* The whole 16-bit length field is consumed first. */
    raw_server_error (h, 4, lens[i], ST_PROTO, 4);
  }
}
END_TEST

START_TEST (test_nonminimal_64bit_length_rejected)
{
  unsigned char h[10] = { 0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0 };
  static const unsigned lens[] = { 0, 5, 125, 126, 0x1234, 0xFFFF };
  size_t i;
  for (i = 0; i < sizeof (lens) / sizeof (lens[0]); i++)
  {
    h[8] = (unsigned char) (lens[i] >> 8);
    h[9] = (unsigned char) lens[i];
    /* The payload is not needed: the header alone is wrong, and the
       whole 64-bit length field is consumed first. */
    raw_server_error (h, 10, 3, ST_PROTO, 10);
  }
}
END_TEST

START_TEST (test_64bit_length_top_bit_rejected)
{
  static const unsigned char h1[10] = { 0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 1, 0 };
  static const unsigned char h2[10] = { 0x82, 0xFF, 0xFF, 0xFF, 0xFF,
                                        0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
  /* Judged, as in the original, only once all 8 length bytes are there:
     every shorter prefix is consumed with OK. */
  raw_server_error (h1, 10, 0, ST_PROTO, 10);
  raw_server_error (h2, 10, 0, ST_PROTO, 10);
}
END_TEST

START_TEST (test_minimal_lengths_accepted_at_boundaries)
{
  /* 16-bit 126 and 64-bit 65536 are the shortest forms: accepted. */
  static const unsigned char h16[4] = { 0x82, 0xFE, 0x00, 0x7E };
  struct bb b = { 0 };
  struct tu_result r;
  unsigned char *p = pattern (126);
  size_t i;
  bb_raw (&b, h16, 4);
  bb_raw (&b, MK, 4);
  for (i = 0; i < 126; i++)
  {
    unsigned char c = (unsigned char) (p[i] ^ MK[i & 3]);
    bb_raw (&b, &c, 1);
  }
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  tu_expect_one (&r, ST_BIN, p, 126);
  tu_result_free (&r);
  bb_free (&b);
  free (p);
}
END_TEST

/* ------------------------------------------------------------ errors */

START_TEST (test_server_rejects_unmasked_frame)
{
  struct bb b = { 0 };
  bb_u (&b, FIN | OP_TEXT, "Hello", 5);
  server_error (&b, F_SERVER, 0, ST_PROTO, 1);
  bb_free (&b);
}
END_TEST

START_TEST (test_rsv_bits_are_protocol_errors)
{
  static const unsigned rsv[] = { 0x40, 0x20, 0x10 };
  size_t i;
  for (i = 0; i < 3; i++)
  {
    struct bb b = { 0 };
    bb_ms (&b, FIN | OP_TEXT, "ok");
    bb_ms (&b, FIN | rsv[i] | OP_TEXT, "Hello");
    {
      struct tu_result r;
      tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
      expect_evs (&r, 0, ST_TEXT, "ok");
      /* The second frame starts after 2 + 4 + 2 bytes. */
      expect_err (&r, 1, ST_PROTO, 8);
      tu_result_free (&r);
    }
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_reserved_opcodes_are_protocol_errors)
{
  static const unsigned ops[] = { 3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF };
  size_t i;
  for (i = 0; i < sizeof (ops) / sizeof (ops[0]); i++)
  {
    struct bb b = { 0 };
    bb_ms (&b, FIN | ops[i], "x");
    server_error (&b, F_SERVER, 0, ST_PROTO, 0);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_continuation_without_start_rejected)
{
  struct bb b = { 0 };
  struct tu_result r;
  size_t l1;
  bb_ms (&b, FIN | OP_CONT, "x");
  server_error (&b, F_SERVER, 0, ST_PROTO, 0);
  server_error (&b, F_SERVER | F_FRAG, 0, ST_PROTO, 0);
  /* Also after a complete message: it is closed. */
  b.n = 0;
  bb_ms (&b, OP_TEXT, "a");
  bb_ms (&b, FIN | OP_CONT, "b");
  l1 = b.n;
  bb_m (&b, OP_CONT, "c", 1);
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  expect_evs (&r, 0, ST_TEXT, "ab");
  expect_err (&r, 1, ST_PROTO, l1);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_data_frame_while_fragmented_message_open_rejected)
{
  static const unsigned second[] = { OP_TEXT, FIN | OP_TEXT, OP_BIN,
                                     FIN | OP_BIN };
  size_t i;
  for (i = 0; i < 4; i++)
  {
    struct bb b = { 0 };
    struct tu_result r;
    size_t l1;
    bb_ms (&b, OP_TEXT, "abc");
    l1 = b.n;
    bb_ms (&b, second[i], "d");
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    expect_err (&r, 0, ST_PROTO, l1);
    tu_result_free (&r);
    tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
    expect_evs (&r, 0, ST_TEXT_FIRST, "abc");
    expect_err (&r, 1, ST_PROTO, l1);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_fragmented_control_frames_rejected)
{
  static const unsigned ops[] = { OP_PING, OP_PONG, OP_CLOSE };
  size_t i;
  for (i = 0; i < 3; i++)
  {
    struct bb b = { 0 };
    bb_ms (&b, ops[i], "\x03\xE8");
    server_error (&b, F_SERVER, 0, ST_PROTO, 0);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_control_frame_over_125_bytes_rejected)
{
  static const unsigned ops[] = { OP_PING, OP_PONG, OP_CLOSE };
  unsigned char *p = pattern (200);
  size_t i;
  for (i = 0; i < 3; i++)
  {
    struct bb b = { 0 };
    /* 7-bit length field 126 (16-bit length follows) */
    bb_m (&b, FIN | ops[i], p, 126);
    server_error (&b, F_SERVER, 0, ST_PROTO, 1);
    b.n = 0;
    /* 7-bit length field 127 (64-bit length follows), revealed before
       the extended length (or its top bit) is read. */
    bb_raw (&b, "\x89\xFF\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    b.d[0] = (unsigned char) (FIN | ops[i]);
    bb_raw (&b, MK, 4);
    server_error (&b, F_SERVER, 0, ST_PROTO, 1);
    bb_free (&b);
  }
  free (p);
}
END_TEST

START_TEST (test_control_frame_of_125_bytes_accepted)
{
  unsigned char *p = pattern (125);
  struct bb b = { 0 };
  struct tu_result r;
  bb_m (&b, FIN | OP_PING, p, 125);
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  tu_expect_one (&r, ST_PING, p, 125);
  tu_result_free (&r);
  bb_free (&b);
  free (p);
}
END_TEST

START_TEST (test_close_payload_of_one_byte_rejected)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, FIN | OP_CLOSE, "\x03");
  server_error (&b, F_SERVER, 0, ST_PROTO, 1);
  b.n = 0;
  bb_u (&b, FIN | OP_CLOSE, "\x03", 1);
  tu_decode_every_split (&r, F_CLIENT, 0, b.d, b.n);
  expect_err (&r, 0, ST_PROTO, 1);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_forbidden_close_codes_rejected)
{
  static const unsigned codes[] = { 0,    1,    999,  1004, 1005, 1006,
                                    1015, 1016, 1100, 2000, 2999 };
  size_t i;
  for (i = 0; i < sizeof (codes) / sizeof (codes[0]); i++)
  {
    unsigned char p[3] = { (unsigned char) (codes[i] >> 8),
                           (unsigned char) codes[i], 'r' };
    struct bb b = { 0 };
    struct tu_result r;
    /* Server: 2 header bytes + 4 mask bytes, second code byte at 7. */
    bb_m (&b, FIN | OP_CLOSE, p, 2);
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    ck_assert_msg (r.count == 1 && r.ev[0].status == ST_PROTO,
                   "close code %u accepted", codes[i]);
    expect_err (&r, 0, ST_PROTO, 7);
    tu_result_free (&r);
    /* With a reason text, client side: second code byte at 3. */
    b.n = 0;
    bb_u (&b, FIN | OP_CLOSE, p, 3);
    tu_decode_every_split (&r, F_CLIENT, 0, b.d, b.n);
    expect_err (&r, 0, ST_PROTO, 3);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_allowed_close_codes_accepted)
{
  static const unsigned codes[] = { 1000, 1001, 1002, 1003, 1007, 1008,
                                    1009, 1010, 1011, 1012, 1013, 1014,
                                    3000, 3999, 4000, 4999, 5000, 65535 };
  size_t i;
  for (i = 0; i < sizeof (codes) / sizeof (codes[0]); i++)
  {
    unsigned char p[4] = { (unsigned char) (codes[i] >> 8),
                           (unsigned char) codes[i], 'o', 'k' };
    struct bb b = { 0 };
    struct tu_result r;
    bb_m (&b, FIN | OP_CLOSE, p, 4);
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    ck_assert_msg (r.count == 1 && r.ev[0].status == ST_CLOSE,
                   "close code %u rejected", codes[i]);
    tu_expect_one (&r, ST_CLOSE, p, 4);
    ck_assert_int_eq (r.validity, V_CONTROL);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_error_offset_is_relative_to_this_call)
{
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  struct bb b = { 0 };
  size_t l1;
  size_t rd;
  char *payload;
  size_t plen;
  bb_ms (&b, FIN | OP_TEXT, "ok");
  l1 = b.n;
  bb_ms (&b, FIN | OP_CLOSE, "\x03\xED"); /* 1005: may not be sent */
  /* Call 1: the text frame and 5 bytes of the close frame. */
  ck_assert_int_eq (dec (ws, b.d, l1 + 5, &rd, &payload, &plen), ST_TEXT);
  ck_assert_uint_eq (rd, l1);
  MHD_websocket_free (ws, payload);
  ck_assert_int_eq (dec (ws, b.d + l1, 5, &rd, &payload, &plen), ST_OK);
  ck_assert_uint_eq (rd, 5);
  /* Call 2: mask byte 3, code byte 1, code byte 2 (index 2 here). */
  ck_assert_int_eq (dec (ws, b.d + l1 + 5, 3, &rd, &payload, &plen), ST_PROTO);
  ck_assert_uint_eq (rd, 2);
  ck_assert_ptr_null (payload);
  ck_assert_uint_eq (plen, 0);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_INVALID);
  tu_stream_end (ws);
  bb_free (&b);
}
END_TEST

/** Runs @a bad (one call), then asserts the stream is broken for good. */
static void
expect_broken_after (int flags, const struct bb *bad, int status)
{
  struct MHD_WebSocketStream *ws = tu_stream (flags, 10);
  struct bb good = { 0 };
  size_t rd;
  char *payload;
  size_t plen;
  int i;
  ck_assert_int_eq (dec (ws, bad->d, bad->n, &rd, &payload, &plen), status);
  if (NULL != payload)
    MHD_websocket_free (ws, payload);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_INVALID);
  if (flags & F_CLIENT)
    bb_u (&good, FIN | OP_PING, "p", 1);
  else
    bb_ms (&good, FIN | OP_PING, "p");
  for (i = 0; i < 3; i++)
  {
    payload = (char *) &rd;
    plen = 3;
    ck_assert_int_eq (dec (ws, good.d, good.n, &rd, &payload, &plen),
                      ST_BROKEN);
    ck_assert_ptr_null (payload);
    ck_assert_uint_eq (plen, 0);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_INVALID);
  }
  tu_stream_end (ws);
  bb_free (&good);
}

START_TEST (test_stream_broken_after_every_kind_of_error)
{
  struct bb b = { 0 };
  bb_ms (&b, FIN | 0x40 | OP_TEXT, "x");
  expect_broken_after (F_SERVER, &b, ST_PROTO);
  expect_broken_after (F_SERVER | F_CLOSE, &b, ST_PROTO);
  b.n = 0;
  bb_ms (&b, FIN | OP_TEXT, "\xFF");
  expect_broken_after (F_SERVER, &b, ST_UTF8);
  b.n = 0;
  bb_ms (&b, FIN | OP_BIN, "0123456789A");
  expect_broken_after (F_SERVER, &b, ST_MAX);
  b.n = 0;
  bb_ms (&b, FIN | OP_BIN, "masked");
  expect_broken_after (F_CLIENT, &b, ST_PROTO);
  bb_free (&b);
}
END_TEST

START_TEST (test_invalidated_stream_is_broken)
{
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  struct bb b = { 0 };
  size_t rd;
  char *payload;
  size_t plen;
  bb_ms (&b, FIN | OP_TEXT, "x");
  ck_assert_int_eq (MHD_websocket_stream_invalidate (ws), ST_OK);
  ck_assert_int_eq (dec (ws, b.d, b.n, &rd, &payload, &plen), ST_BROKEN);
  ck_assert_ptr_null (payload);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  bb_free (&b);
}
END_TEST

/**
 * Asserts that @a r holds exactly error @a status at @a offset with a
 * close frame carrying @a code (unmasked for servers, masked for
 * clients).
 */
static void
check_close_on_error (const struct tu_result *r, int flags, int status,
                      size_t offset, unsigned code)
{
  const unsigned char *f;
  ck_assert_uint_eq (r->count, 1);
  ck_assert_int_eq (r->ev[0].status, status);
  ck_assert_uint_eq (r->ev[0].offset, offset);
  ck_assert_int_eq (r->validity, V_INVALID);
  f = (const unsigned char *) r->ev[0].payload;
  ck_assert_ptr_nonnull (f);
  if (flags & F_CLIENT)
  {
    unsigned c;
    ck_assert_uint_eq (r->ev[0].len, 8);
    ck_assert_uint_eq (f[0], 0x88);
    ck_assert_uint_eq (f[1], 0x82);
    c = (unsigned) ((f[6] ^ f[2]) << 8) | (unsigned) (f[7] ^ f[3]);
    ck_assert_uint_eq (c, code);
  }
  else
  {
    unsigned char want[4] = { 0x88, 0x02, (unsigned char) (code >> 8),
                              (unsigned char) code };
    ck_assert_uint_eq (r->ev[0].len, 4);
    ck_assert_mem_eq (f, want, 4);
  }
}

/**
 * Decodes @a b on a stream with GENERATE_CLOSE_FRAMES_ON_ERROR and
 * asserts error @a status at @a offset with a close frame carrying
 * @a code (unmasked for servers, masked for clients).
 */
static void
expect_close_on_error (const struct bb *b, int flags, size_t max, int status,
                       size_t offset, unsigned code)
{
  struct tu_result r;
  size_t at;
  if (0 == (flags & F_CLIENT))
  {
    tu_decode_every_split (&r, flags | F_CLOSE, max, b->d, b->n);
    check_close_on_error (&r, flags, status, offset, code);
    tu_result_free (&r);
    return;
  }
  /* Client close frames carry a fresh random mask each time, so the
     splits are compared after unmasking. */
  for (at = 0; at < b->n; at++)
  {
    tu_decode (&r, flags | F_CLOSE, max, b->d, b->n, at, 0);
    check_close_on_error (&r, flags, status, offset, code);
    tu_result_free (&r);
  }
  tu_decode (&r, flags | F_CLOSE, max, b->d, b->n, 1, 1);
  check_close_on_error (&r, flags, status, offset, code);
  tu_result_free (&r);
}

START_TEST (test_close_frame_on_protocol_error_is_1002)
{
  struct bb b = { 0 };
  bb_ms (&b, FIN | 0x20 | OP_TEXT, "x");
  expect_close_on_error (&b, F_SERVER, 0, ST_PROTO, 0, 1002);
  b.n = 0;
  bb_u (&b, FIN | OP_TEXT, "unmasked", 8);
  expect_close_on_error (&b, F_SERVER, 0, ST_PROTO, 1, 1002);
  bb_free (&b);
}
END_TEST

START_TEST (test_close_frame_on_utf8_error_is_1007)
{
  struct bb b = { 0 };
  bb_ms (&b, FIN | OP_TEXT, "ab\xC0\x80");
  expect_close_on_error (&b, F_SERVER, 0, ST_UTF8, 8, 1007);
  bb_free (&b);
}
END_TEST

START_TEST (test_close_frame_on_size_error_is_1009)
{
  struct bb b = { 0 };
  bb_ms (&b, FIN | OP_BIN, "0123456789A");
  expect_close_on_error (&b, F_SERVER, 10, ST_MAX, 2, 1009);
  bb_free (&b);
}
END_TEST

START_TEST (test_client_close_frame_on_error_is_masked)
{
  struct bb b = { 0 };
  bb_ms (&b, FIN | OP_TEXT, "masked");
  expect_close_on_error (&b, F_CLIENT, 0, ST_PROTO, 1, 1002);
  b.n = 0;
  bb_u (&b, FIN | OP_TEXT, "a\xED\xA0\x80", 4);
  expect_close_on_error (&b, F_CLIENT, 0, ST_UTF8, 4, 1007);
  b.n = 0;
  bb_u (&b, FIN | OP_BIN, "0123456789A", 11);
  expect_close_on_error (&b, F_CLIENT, 10, ST_MAX, 2, 1009);
  bb_free (&b);
}
END_TEST

START_TEST (test_no_close_frame_without_flag)
{
  struct bb b = { 0 };
  /* expect_err asserts a NULL payload for each kind of error. */
  bb_ms (&b, FIN | 0x20 | OP_TEXT, "x");
  server_error (&b, F_SERVER, 0, ST_PROTO, 0);
  b.n = 0;
  bb_ms (&b, FIN | OP_TEXT, "ab\xC0\x80");
  server_error (&b, F_SERVER, 0, ST_UTF8, 8);
  b.n = 0;
  bb_ms (&b, FIN | OP_BIN, "0123456789A");
  server_error (&b, F_SERVER, 10, ST_MAX, 2);
  bb_free (&b);
}
END_TEST

/* ------------------------------------------------------------ utf8 */

/** An invalid sequence and the index of its first offending byte. */
struct bad_seq
{
  const char *s;
  size_t len;
  size_t bad;
};

static const struct bad_seq bad_seqs[] = {
  { "\xC0\x80", 2, 0 },             /* overlong NUL */
  { "\xC0\xAF", 2, 0 },             /* overlong '/' */
  { "\xC1\xBF", 2, 0 },             /* overlong U+007F */
  { "\xE0\x80\x80", 3, 1 },         /* overlong 3-byte */
  { "\xE0\x9F\xBF", 3, 1 },         /* overlong U+07FF */
  { "\xF0\x80\x80\x80", 4, 1 },     /* overlong 4-byte */
  { "\xF0\x8F\xBF\xBF", 4, 1 },     /* overlong U+FFFF */
  { "\xED\xA0\x80", 3, 1 },         /* surrogate U+D800 */
  { "\xED\xAF\xBF", 3, 1 },         /* surrogate U+DBFF */
  { "\xED\xB0\x80", 3, 1 },         /* surrogate U+DC00 */
  { "\xED\xBF\xBF", 3, 1 },         /* surrogate U+DFFF */
  { "\xF4\x90\x80\x80", 4, 1 },     /* U+110000 */
  { "\xF4\xBF\xBF\xBF", 4, 1 },     /* above U+10FFFF */
  { "\xF5\x80\x80\x80", 4, 0 },     /* lead above F4 */
  { "\xF7\xBF\xBF\xBF", 4, 0 },     /* lead above F4 */
  { "\xF8\x88\x80\x80\x80", 5, 0 }, /* 5-byte form */
  { "\xFC\x84\x80\x80\x80\x80", 6, 0 },
  { "\xFE", 1, 0 },
  { "\xFF", 1, 0 },
  { "\x80", 1, 0 },         /* lone continuation */
  { "\xBF", 1, 0 },         /* lone continuation */
  { "\xC3\xA9\xA9", 3, 2 }, /* continuation after a complete char */
  { "\xC3"
    "A",
    2, 1 },             /* truncated 2-byte */
  { "\xC3\xC3", 2, 1 }, /* lead where a tail is due */
  { "\xE2\x82"
    "A",
    3, 2 }, /* truncated 3-byte */
  { "\xE1\x80\xC0", 3, 2 },
  { "\xF0\x9F\x98"
    "A",
    4, 3 }, /* truncated 4-byte */
  { "\xF4\x8F\xBF\xC0", 4, 3 },
  { "\xF1\x80"
    " ",
    3, 2 },
};

#define N_BAD (sizeof (bad_seqs) / sizeof (bad_seqs[0]))

/** Valid boundary characters (RFC 3629 edges). */
static const char *const good_chars[] = { "\x00",
                                          "\x7F",
                                          "\xC2\x80",
                                          "\xDF\xBF",
                                          "\xE0\xA0\x80",
                                          "\xE1\x80\x80",
                                          "\xEC\xBF\xBF",
                                          "\xED\x80\x80",
                                          "\xED\x9F\xBF",
                                          "\xEE\x80\x80",
                                          "\xEF\xBF\xBF",
                                          "\xF0\x90\x80\x80",
                                          "\xF1\x80\x80\x80",
                                          "\xF3\xBF\xBF\xBF",
                                          "\xF4\x80\x80\x80",
                                          "\xF4\x8F\xBF\xBF" };

#define N_GOOD (sizeof (good_chars) / sizeof (good_chars[0]))

/** Byte length of good_chars[i] (the first is a NUL byte). */
static size_t
good_len (size_t i)
{
  unsigned char c = (unsigned char) good_chars[i][0];
  if (c < 0x80)
    return 1;
  if (c < 0xE0)
    return 2;
  if (c < 0xF0)
    return 3;
  return 4;
}

START_TEST (test_valid_utf8_edges_accepted)
{
  size_t i;
  for (i = 0; i < N_GOOD; i++)
  {
    char text[16];
    size_t n = good_len (i);
    struct bb b = { 0 };
    struct tu_result r;
    text[0] = 'a';
    memcpy (text + 1, good_chars[i], n);
    text[n + 1] = 'z';
    bb_m (&b, FIN | OP_TEXT, text, n + 2);
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    ck_assert_msg (r.count == 1 && r.ev[0].status == ST_TEXT,
                   "valid char %zu rejected", i);
    tu_expect_one (&r, ST_TEXT, text, n + 2);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_invalid_utf8_rejected_at_offending_byte)
{
  size_t i;
  for (i = 0; i < N_BAD; i++)
  {
    char text[16];
    struct bb b = { 0 };
    struct tu_result r;
    memcpy (text, "ab", 2);
    memcpy (text + 2, bad_seqs[i].s, bad_seqs[i].len);
    memcpy (text + 2 + bad_seqs[i].len, "yz", 2);
    bb_m (&b, FIN | OP_TEXT, text, bad_seqs[i].len + 4);
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    ck_assert_msg (r.count == 1 && r.ev[0].status == ST_UTF8,
                   "bad sequence %zu: status %d", i,
                   r.count ? r.ev[0].status : 0);
    ck_assert_msg (r.ev[0].offset == 6 + 2 + bad_seqs[i].bad,
                   "bad sequence %zu: offset %zu", i, r.ev[0].offset);
    expect_err (&r, 0, ST_UTF8, 6 + 2 + bad_seqs[i].bad);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_invalid_utf8_found_at_every_word_position)
{
  /* Word-wise validation must still report the exact byte, wherever it
     sits relative to word boundaries and the mask phase. */
  char text[48];
  size_t pos;
  for (pos = 0; pos < 40; pos++)
  {
    struct bb b = { 0 };
    struct tu_result r;
    memset (text, 'a', sizeof (text));
    text[pos] = (char) 0x80;
    bb_m (&b, FIN | OP_TEXT, text, sizeof (text));
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    expect_err (&r, 0, ST_UTF8, 6 + pos);
    tu_result_free (&r);
    /* A lead byte followed by ASCII: the ASCII byte is the culprit. */
    memset (text, 'a', sizeof (text));
    text[pos] = (char) 0xE1;
    b.n = 0;
    bb_m (&b, FIN | OP_TEXT, text, sizeof (text));
    tu_decode (&r, F_SERVER, 0, b.d, b.n, 0, 0);
    expect_err (&r, 0, ST_UTF8, 6 + pos + 1);
    tu_result_free (&r);
    tu_decode (&r, F_SERVER, 0, b.d, b.n, 5, 3);
    expect_err (&r, 0, ST_UTF8, 6 + pos + 1);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_invalid_utf8_deep_in_large_frame)
{
  size_t n = 70000;
  unsigned char *t = pattern (n);
  struct bb b = { 0 };
  struct tu_result r;
  size_t hdr;
  /* Valid multi-byte text up to the bad byte. */
  memcpy (t + 1000, "\xF0\x9F\x98\x80\xE2\x82\xAC\xC3\xA9", 9);
  t[65001] = (unsigned char) 0xED;
  t[65002] = (unsigned char) 0xA0; /* surrogate */
  bb_m (&b, FIN | OP_TEXT, t, n);
  hdr = b.n - n;
  decode_chunked (&r, F_SERVER, 0, b.d, b.n);
  expect_err (&r, 0, ST_UTF8, hdr + 65002);
  tu_result_free (&r);
  /* Fail-fast: only the bytes up to the bad one. */
  tu_decode (&r, F_SERVER, 0, b.d, hdr + 65003, 0, 0);
  expect_err (&r, 0, ST_UTF8, hdr + 65002);
  tu_result_free (&r);
  tu_decode (&r, F_SERVER, 0, b.d, hdr + 65003, 4096, 4096);
  expect_err (&r, 0, ST_UTF8, hdr + 65002);
  tu_result_free (&r);
  bb_free (&b);
  free (t);
}
END_TEST

START_TEST (test_invalid_utf8_fail_fast_before_frame_complete)
{
  size_t i;
  for (i = 0; i < N_BAD; i++)
  {
    char text[64];
    struct bb b = { 0 };
    struct tu_result r;
    size_t bad_at = 6 + 2 + bad_seqs[i].bad;
    memset (text, 'q', sizeof (text));
    memcpy (text, "ab", 2);
    memcpy (text + 2, bad_seqs[i].s, bad_seqs[i].len);
    bb_m (&b, FIN | OP_TEXT, text, sizeof (text));
    /* Only the bytes up to and including the offending one arrive. */
    tu_decode_every_split (&r, F_SERVER, 0, b.d, bad_at + 1);
    expect_err (&r, 0, ST_UTF8, bad_at);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_invalid_utf8_fail_fast_in_later_fragment)
{
  size_t i;
  for (i = 0; i < N_BAD; i++)
  {
    char text[40];
    struct bb b = { 0 };
    struct tu_result r;
    size_t l1, bad_at;
    memset (text, 'q', sizeof (text));
    memcpy (text + 1, bad_seqs[i].s, bad_seqs[i].len);
    bb_ms (&b, OP_TEXT, "first ");
    bb_ms (&b, OP_CONT, "second ");
    l1 = b.n;
    bb_m (&b, FIN | OP_CONT, text, sizeof (text));
    bad_at = l1 + 6 + 1 + bad_seqs[i].bad;
    tu_decode_every_split (&r, F_SERVER, 0, b.d, bad_at + 1);
    expect_err (&r, 0, ST_UTF8, bad_at);
    tu_result_free (&r);
    tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, bad_at + 1);
    expect_evs (&r, 0, ST_TEXT_FIRST, "first ");
    expect_evs (&r, 1, ST_TEXT_NEXT, "second ");
    expect_err (&r, 2, ST_UTF8, bad_at);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_invalid_sequence_cut_by_fragment_boundary)
{
  size_t i;
  for (i = 0; i < N_BAD; i++)
  {
    size_t cut;
    if (0 == bad_seqs[i].bad)
      continue;
    /* Every cut before the offending byte: the error is still found at
       that byte, in the later fragment. */
    for (cut = 1; cut <= bad_seqs[i].bad; cut++)
    {
      struct bb b = { 0 };
      struct tu_result r;
      size_t l1;
      char t2[16];
      bb_m (&b, OP_TEXT, bad_seqs[i].s, cut);
      l1 = b.n;
      memcpy (t2, bad_seqs[i].s + cut, bad_seqs[i].len - cut);
      t2[bad_seqs[i].len - cut] = 'z';
      bb_m (&b, FIN | OP_CONT, t2, bad_seqs[i].len - cut + 1);
      tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
      expect_err (&r, 0, ST_UTF8, l1 + 6 + bad_seqs[i].bad - cut);
      tu_result_free (&r);
      bb_free (&b);
    }
  }
}
END_TEST

START_TEST (test_valid_chars_split_across_fragments_accepted)
{
  size_t i;
  for (i = 0; i < N_GOOD; i++)
  {
    size_t n = good_len (i);
    size_t cut;
    for (cut = 1; cut < n; cut++)
    {
      char t1[8];
      char t2[8];
      char whole[8];
      struct bb b = { 0 };
      struct tu_result r;
      t1[0] = 'x';
      memcpy (t1 + 1, good_chars[i], cut);
      memcpy (t2, good_chars[i] + cut, n - cut);
      t2[n - cut] = 'y';
      whole[0] = 'x';
      memcpy (whole + 1, good_chars[i], n);
      whole[n + 1] = 'y';
      bb_m (&b, OP_TEXT, t1, cut + 1);
      bb_m (&b, FIN | OP_CONT, t2, n - cut + 1);
      tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
      tu_expect_one (&r, ST_TEXT, whole, n + 2);
      tu_result_free (&r);
      /* Three fragments: one byte of the character in the middle. */
      if (n >= 3)
      {
        b.n = 0;
        bb_m (&b, OP_TEXT, good_chars[i], 1);
        bb_m (&b, OP_CONT, good_chars[i] + 1, 1);
        bb_m (&b, FIN | OP_CONT, good_chars[i] + 2, n - 2);
        tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
        tu_expect_one (&r, ST_TEXT, good_chars[i], n);
        tu_result_free (&r);
      }
      bb_free (&b);
    }
  }
}
END_TEST

START_TEST (test_message_ending_in_truncated_sequence_rejected)
{
  static const char *const cut[] = { "\xC3",         "\xE2",         "\xE2\x82",
                                     "\xE0\xA0",     "\xED\x9F",     "\xF0",
                                     "\xF0\x9F",     "\xF0\x9F\x98", "\xF4\x8F",
                                     "\xF4\x8F\xBF", "\xF3\xBF\xBF" };
  size_t i;
  for (i = 0; i < sizeof (cut) / sizeof (cut[0]); i++)
  {
    struct bb b = { 0 };
    struct tu_result r;
    char text[8];
    size_t n = strlen (cut[i]);
    size_t l1;
    text[0] = 'a';
    memcpy (text + 1, cut[i], n);
    /* Unfragmented: revealed by the frame's last byte. */
    bb_m (&b, FIN | OP_TEXT, text, n + 1);
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    expect_err (&r, 0, ST_UTF8, b.n - 1);
    tu_result_free (&r);
    /* Final fragment non-empty: its last byte. */
    b.n = 0;
    bb_ms (&b, OP_TEXT, "xy");
    bb_m (&b, FIN | OP_CONT, text, n + 1);
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    expect_err (&r, 0, ST_UTF8, b.n - 1);
    tu_result_free (&r);
    /* Final fragment empty: its last header byte (the last mask byte). */
    b.n = 0;
    bb_m (&b, OP_TEXT, text, n + 1);
    l1 = b.n;
    bb_m (&b, FIN | OP_CONT, NULL, 0);
    ck_assert_uint_eq (b.n, l1 + 6);
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    expect_err (&r, 0, ST_UTF8, l1 + 5);
    tu_result_free (&r);
    tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
    expect_evs (&r, 0, ST_TEXT_FIRST, "a");
    expect_err (&r, 1, ST_UTF8, l1 + 5);
    tu_result_free (&r);
    /* Client side: an empty unmasked final frame ends at its byte 1. */
    b.n = 0;
    bb_u (&b, OP_TEXT, text, n + 1);
    l1 = b.n;
    bb_u (&b, FIN | OP_CONT, NULL, 0);
    tu_decode_every_split (&r, F_CLIENT, 0, b.d, b.n);
    expect_err (&r, 0, ST_UTF8, l1 + 1);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_utf8_state_does_not_leak_between_messages)
{
  struct bb b = { 0 };
  struct tu_result r;
  size_t l1;
  /* Message 1 is valid and complete; message 2 starts with a tail byte
     that would have completed a character. */
  bb_ms (&b, FIN | OP_TEXT, "a\xC3\xA9");
  l1 = b.n;
  bb_ms (&b, FIN | OP_TEXT, "\xA9z");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  expect_evs (&r, 0, ST_TEXT, "a\xC3\xA9");
  expect_err (&r, 1, ST_UTF8, l1 + 6);
  tu_result_free (&r);
  /* Same across a fragmented message 1. */
  b.n = 0;
  bb_ms (&b, OP_TEXT, "a\xE2\x82");
  bb_ms (&b, FIN | OP_CONT, "\xAC");
  l1 = b.n;
  bb_ms (&b, OP_TEXT, "\x82\xAC");
  bb_ms (&b, FIN | OP_CONT, "z");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  expect_evs (&r, 0, ST_TEXT, "a\xE2\x82\xAC");
  expect_err (&r, 1, ST_UTF8, l1 + 6);
  tu_result_free (&r);
  /* Message 1 ends on a boundary: message 2 (valid) passes. */
  b.n = 0;
  bb_ms (&b, FIN | OP_TEXT, "\xF0\x9F\x98\x80");
  bb_ms (&b, FIN | OP_TEXT, "\xE2\x82\xAC");
  bb_ms (&b, OP_TEXT, "\xC3");
  bb_ms (&b, FIN | OP_CONT, "\xA9");
  bb_ms (&b, FIN | OP_TEXT, "ok");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 4);
  expect_evs (&r, 0, ST_TEXT, "\xF0\x9F\x98\x80");
  expect_evs (&r, 1, ST_TEXT, "\xE2\x82\xAC");
  expect_evs (&r, 2, ST_TEXT, "\xC3\xA9");
  expect_evs (&r, 3, ST_TEXT, "ok");
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_binary_text_state_separate)
{
  /* A binary message ending in a lead byte does not affect the next
     text message, and vice versa binary after text is not validated. */
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, FIN | OP_BIN, "\xE2\x82");
  bb_ms (&b, FIN | OP_TEXT, "ok");
  bb_ms (&b, FIN | OP_BIN, "\xAC\xFF");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 3);
  expect_evs (&r, 0, ST_BIN, "\xE2\x82");
  expect_evs (&r, 1, ST_TEXT, "ok");
  expect_evs (&r, 2, ST_BIN, "\xAC\xFF");
  ck_assert_int_eq (r.validity, V_VALID);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_binary_ping_pong_not_validated)
{
  static const char junk[] = "\xFF\xC0\x80\xED\xA0\x80\xF4\x90\x80\x80\xC3";
  size_t n = sizeof (junk) - 1;
  static const unsigned ops[] = { OP_BIN, OP_PING, OP_PONG };
  static const int want[] = { ST_BIN, ST_PING, ST_PONG };
  size_t i;
  for (i = 0; i < 3; i++)
  {
    struct bb b = { 0 };
    struct tu_result r;
    bb_m (&b, FIN | ops[i], junk, n);
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    tu_expect_one (&r, want[i], junk, n);
    tu_result_free (&r);
    bb_free (&b);
  }
  {
    /* Fragmented binary with junk in every fragment. */
    struct bb b = { 0 };
    struct tu_result r;
    bb_m (&b, OP_BIN, junk, 5);
    bb_m (&b, FIN | OP_CONT, junk + 5, n - 5);
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    tu_expect_one (&r, ST_BIN, junk, n);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_close_reason_validated)
{
  size_t i;
  for (i = 0; i < N_BAD; i++)
  {
    char p[16];
    struct bb b = { 0 };
    struct tu_result r;
    p[0] = 0x03;
    p[1] = (char) 0xE8;
    p[2] = 'r';
    memcpy (p + 3, bad_seqs[i].s, bad_seqs[i].len);
    p[3 + bad_seqs[i].len] = 'z';
    bb_m (&b, FIN | OP_CLOSE, p, bad_seqs[i].len + 4);
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    expect_err (&r, 0, ST_UTF8, 6 + 3 + bad_seqs[i].bad);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_close_reason_ending_in_truncated_sequence_rejected)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, FIN | OP_CLOSE,
         "\x03\xE8"
         "bye\xE2\x82");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  expect_err (&r, 0, ST_UTF8, b.n - 1);
  tu_result_free (&r);
  b.n = 0;
  bb_u (&b, FIN | OP_CLOSE, "\x03\xE8\xF0", 3);
  tu_decode_every_split (&r, F_CLIENT, 0, b.d, b.n);
  expect_err (&r, 0, ST_UTF8, 4);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_close_reason_multibyte_split_across_calls)
{
  static const char p[] = "\x03\xE8\xF0\x9F\x98\x80 \xE2\x82\xAC";
  size_t n = sizeof (p) - 1;
  size_t cut;
  struct bb b = { 0 };
  bb_m (&b, FIN | OP_CLOSE, p, n);
  /* Explicitly two calls, cut inside each character. */
  for (cut = 7; cut < b.n; cut++)
  {
    struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
    size_t rd;
    char *payload;
    size_t plen;
    ck_assert_int_eq (dec (ws, b.d, cut, &rd, &payload, &plen), ST_OK);
    ck_assert_uint_eq (rd, cut);
    ck_assert_int_eq (dec (ws, b.d + cut, b.n - cut, &rd, &payload, &plen),
                      ST_CLOSE);
    ck_assert_uint_eq (rd, b.n - cut);
    ck_assert_uint_eq (plen, n);
    ck_assert_mem_eq (payload, p, n);
    MHD_websocket_free (ws, payload);
    ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  }
  bb_free (&b);
}
END_TEST

START_TEST (test_close_between_fragments_has_own_utf8_state)
{
  struct bb b = { 0 };
  struct tu_result r;
  size_t l1;
  /* The text message stops after E2 82 (one tail due).  A close reason
     starting with a lead byte is valid on its own... */
  bb_ms (&b, OP_TEXT, "a\xE2\x82");
  bb_ms (&b, FIN | OP_CLOSE, "\x03\xE8\xE2\x82\xAC");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 1);
  expect_evs (&r, 0, ST_CLOSE, "\x03\xE8\xE2\x82\xAC");
  ck_assert_int_eq (r.validity, V_CONTROL);
  tu_result_free (&r);
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 2);
  expect_evs (&r, 0, ST_TEXT_FIRST, "a");
  expect_evs (&r, 1, ST_CLOSE, "\x03\xE8\xE2\x82\xAC");
  tu_result_free (&r);
  /* ...and one starting with the tail byte the text waits for is not. */
  b.n = 0;
  bb_ms (&b, OP_TEXT, "a\xE2\x82");
  l1 = b.n;
  bb_ms (&b, FIN | OP_CLOSE, "\x03\xE8\xACz");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  expect_err (&r, 0, ST_UTF8, l1 + 6 + 2);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_ping_between_fragments_keeps_text_utf8_state)
{
  struct bb b = { 0 };
  struct tu_result r;
  size_t l1;
  /* A ping holding the awaited tail byte must not complete the text's
     character, nor a ping holding a lead byte start one. */
  bb_ms (&b, OP_TEXT, "a\xE2\x82");
  bb_ms (&b, FIN | OP_PING, "\xAC");
  bb_ms (&b, FIN | OP_PONG, "\xE2");
  bb_ms (&b, FIN | OP_CONT, "\xAC!");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 3);
  expect_evs (&r, 0, ST_PING, "\xAC");
  expect_evs (&r, 1, ST_PONG, "\xE2");
  expect_evs (&r, 2, ST_TEXT, "a\xE2\x82\xAC!");
  tu_result_free (&r);
  /* The text still needs its tail: a continuation with 'x' fails. */
  b.n = 0;
  bb_ms (&b, OP_TEXT, "a\xE2\x82");
  bb_ms (&b, FIN | OP_PING, "\xAC");
  l1 = b.n;
  bb_ms (&b, FIN | OP_CONT, "x");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  expect_evs (&r, 0, ST_PING, "\xAC");
  expect_err (&r, 1, ST_UTF8, l1 + 6);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

/* ------------------------------------------------------------ limits */

START_TEST (test_frame_over_max_rejected_at_length_7bit)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, FIN | OP_BIN, "0123456789A");
  /* Only the header arrives: the length alone decides. */
  tu_decode_every_split (&r, F_SERVER, 10, b.d, 2);
  expect_err (&r, 0, ST_MAX, 2);
  tu_result_free (&r);
  server_error (&b, F_SERVER, 10, ST_MAX, 2);
  b.n = 0;
  bb_ms (&b, FIN | OP_TEXT, "0123456789A");
  server_error (&b, F_SERVER, 10, ST_MAX, 2);
  bb_free (&b);
}
END_TEST

START_TEST (test_frame_over_max_rejected_at_length_16bit)
{
  unsigned char *p = pattern (300);
  struct bb b = { 0 };
  struct tu_result r;
  bb_m (&b, FIN | OP_BIN, p, 300);
  tu_decode_every_split (&r, F_SERVER, 299, b.d, 4);
  expect_err (&r, 0, ST_MAX, 4);
  tu_result_free (&r);
  tu_decode_every_split (&r, F_SERVER, 126, b.d, b.n);
  expect_err (&r, 0, ST_MAX, 4);
  tu_result_free (&r);
  bb_free (&b);
  free (p);
}
END_TEST

START_TEST (test_frame_over_max_rejected_at_length_64bit)
{
  static const unsigned char h[10] = {
    0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0x11, 0x71
  };
  struct bb b = { 0 };
  struct tu_result r;
  bb_raw (&b, h, 10);
  tu_decode_every_split (&r, F_SERVER, 70000, b.d, b.n);
  expect_err (&r, 0, ST_MAX, 10);
  tu_result_free (&r);
  /* A huge announced length against a small limit. */
  b.n = 0;
  bb_raw (&b, "\x82\xFF\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 10);
  tu_decode_every_split (&r, F_SERVER, 1000, b.d, b.n);
  expect_err (&r, 0, ST_MAX, 10);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_frame_of_exactly_max_accepted)
{
  unsigned char *p = pattern (300);
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, FIN | OP_TEXT, "0123456789");
  tu_decode_every_split (&r, F_SERVER, 10, b.d, b.n);
  tu_expect_one (&r, ST_TEXT, "0123456789", 10);
  tu_result_free (&r);
  b.n = 0;
  bb_m (&b, FIN | OP_BIN, p, 300);
  tu_decode_every_split (&r, F_SERVER, 300, b.d, b.n);
  tu_expect_one (&r, ST_BIN, p, 300);
  tu_result_free (&r);
  /* An empty frame with the smallest limit. */
  b.n = 0;
  bb_m (&b, FIN | OP_BIN, NULL, 0);
  tu_decode_every_split (&r, F_SERVER, 1, b.d, b.n);
  tu_expect_one (&r, ST_BIN, NULL, 0);
  tu_result_free (&r);
  bb_free (&b);
  free (p);
}
END_TEST

START_TEST (test_control_frame_over_max_rejected)
{
  struct bb b = { 0 };
  bb_ms (&b, FIN | OP_PING, "0123456789A");
  server_error (&b, F_SERVER, 10, ST_MAX, 2);
  bb_free (&b);
}
END_TEST

START_TEST (test_reassembled_message_over_max_rejected)
{
  struct bb b = { 0 };
  struct tu_result r;
  size_t l2;
  bb_ms (&b, OP_TEXT, "01234");
  bb_ms (&b, OP_CONT, "567");
  l2 = b.n;
  bb_ms (&b, FIN | OP_CONT, "89A");
  /* 5 + 3 + 3 = 11 > 10: revealed once the third frame's header,
     masking key included, is read (as the original did), before its
     payload arrives. */
  tu_decode_every_split (&r, F_SERVER, 10, b.d, l2 + 6);
  expect_err (&r, 0, ST_MAX, l2 + 6);
  tu_result_free (&r);
  tu_decode_every_split (&r, F_SERVER, 10, b.d, b.n);
  expect_err (&r, 0, ST_MAX, l2 + 6);
  tu_result_free (&r);
  /* Exactly the limit in total: accepted. */
  tu_decode_every_split (&r, F_SERVER, 11, b.d, b.n);
  tu_expect_one (&r, ST_TEXT, "0123456789A", 11);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_control_frames_do_not_count_toward_message_size)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, OP_BIN, "01234567");
  bb_ms (&b, FIN | OP_PING, "123456789");
  bb_ms (&b, FIN | OP_CONT, "89");
  tu_decode_every_split (&r, F_SERVER, 10, b.d, b.n);
  ck_assert_uint_eq (r.count, 2);
  expect_evs (&r, 0, ST_PING, "123456789");
  expect_evs (&r, 1, ST_BIN, "0123456789");
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_want_fragments_limit_bounds_each_frame)
{
  struct bb b = { 0 };
  struct tu_result r;
  size_t l2;
  bb_ms (&b, OP_TEXT, "01234567");
  bb_ms (&b, OP_CONT, "89abcdef");
  l2 = b.n;
  bb_ms (&b, FIN | OP_CONT, "ghijklmn");
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 10, b.d, b.n);
  ck_assert_uint_eq (r.count, 3);
  expect_evs (&r, 0, ST_TEXT_FIRST, "01234567");
  expect_evs (&r, 1, ST_TEXT_NEXT, "89abcdef");
  expect_evs (&r, 2, ST_TEXT_LAST, "ghijklmn");
  ck_assert_int_eq (r.validity, V_VALID);
  tu_result_free (&r);
  /* Bytes of a cut character held back from one fragment are handed out
     with the next, so they count against it: no payload handed out
     exceeds the limit.  A 9-byte frame after one held byte passes... */
  b.n = 0;
  bb_ms (&b, OP_TEXT, "012345678\xC3");
  bb_ms (&b, FIN | OP_CONT,
         "\xA9"
         "abcdefgh");
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 10, b.d, b.n);
  ck_assert_uint_eq (r.count, 2);
  expect_evs (&r, 0, ST_TEXT_FIRST, "012345678");
  expect_evs (&r, 1, ST_TEXT_LAST,
              "\xC3\xA9"
              "abcdefgh");
  tu_result_free (&r);
  /* ...a 10-byte one is rejected once its header is read (offset
     16 + 6): alone it fits, with the held byte it does not. */
  b.n = 0;
  bb_ms (&b, OP_TEXT, "012345678\xC3");
  bb_ms (&b, FIN | OP_CONT,
         "\xA9"
         "abcdefghi");
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 10, b.d, b.n);
  ck_assert_uint_eq (r.count, 2);
  expect_evs (&r, 0, ST_TEXT_FIRST, "012345678");
  ck_assert_int_eq (r.ev[1].status, MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED);
  ck_assert_uint_eq (r.ev[1].offset, 22);
  tu_result_free (&r);
  /* One fragment over the limit is still rejected. */
  b.n = 0;
  bb_ms (&b, OP_TEXT, "01234567");
  bb_ms (&b, OP_CONT, "89abcdef");
  bb_ms (&b, FIN | OP_CONT, "ghijklmnopq");
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 10, b.d, b.n);
  ck_assert_uint_eq (r.count, 3);
  expect_err (&r, 2, ST_MAX, l2 + 2);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

/* ------------------------------------------------ fidelity: error offsets */

/** Length forms of a frame header. */
enum lform
{
  L7 = 2,
  L16 = 4,
  L64 = 10
};

/**
 * Writes a header with @a len in the form @a form (also a non-minimal
 * one), masked with MK when @a masked.
 * @return the header's size
 */
static size_t
raw_header (unsigned char *out, unsigned b0, uint64_t len, enum lform form,
            int masked)
{
  size_t n = 0;
  int i;
  unsigned mbit = masked ? 0x80u : 0u;
  out[n++] = (unsigned char) b0;
  if (L7 == form)
    out[n++] = (unsigned char) (mbit | (unsigned) len);
  else if (L16 == form)
  {
    out[n++] = (unsigned char) (mbit | 126u);
    out[n++] = (unsigned char) (len >> 8);
    out[n++] = (unsigned char) len;
  }
  else
  {
    out[n++] = (unsigned char) (mbit | 127u);
    for (i = 56; i >= 0; i -= 8)
      out[n++] = (unsigned char) (len >> i);
  }
  if (masked)
  {
    memcpy (out + n, MK, 4);
    n += 4;
  }
  return n;
}

/**
 * Feeds all @a len bytes at @a in, the way a program would: every status
 * before the last is a complete frame (its payload is freed), the last
 * call returns OK with all of its input consumed, and there is no error.
 */
static void
feed_ok (struct MHD_WebSocketStream *ws, const unsigned char *in, size_t len)
{
  size_t pos = 0;
  while (pos < len)
  {
    size_t rd = 999;
    char *p = (char *) 1;
    size_t pl = 999;
    int st = dec (ws, in + pos, len - pos, &rd, &p, &pl);
    ck_assert_msg (st >= 0, "prefix %zu: error %d at %zu", len, st, pos + rd);
    ck_assert_uint_le (rd, len - pos);
    pos += rd;
    if (NULL != p)
      MHD_websocket_free (ws, p);
    if (ST_OK == st)
      ck_assert_msg (pos == len, "OK without consuming all: %zu of %zu", pos,
                     len);
  }
  ck_assert_int_ne (MHD_websocket_stream_is_valid (ws), V_INVALID);
}

/**
 * The error @a status must come with the call that completes offset
 * @a at of @a in, and not before: every prefix shorter than that is
 * consumed whole with OK (the stream still usable), and the call that
 * holds the rest reports the error with exactly the missing bytes
 * consumed.  Checked for every prefix length from @a lead (the start of
 * the frame in question; earlier frames are fed first), on a fresh
 * stream each.
 */
static void
error_exactly_at (int flags, size_t max, const unsigned char *in, size_t n,
                  size_t lead, int status, size_t at)
{
  size_t k;
  ck_assert_uint_le (at, n);
  for (k = lead; k <= at; k++)
  {
    struct MHD_WebSocketStream *ws = tu_stream (flags, max);
    size_t from = (k < at) ? k : lead;
    size_t upto = (k < at) ? n : at; /* the last: ends with the field */
    size_t rd = 999;
    char *p = (char *) 1;
    size_t pl = 999;
    int st;
    feed_ok (ws, in, from);
    st = dec (ws, in + from, upto - from, &rd, &p, &pl);
    ck_assert_msg (status == st, "prefix %zu: status %d, want %d", k, st,
                   status);
    ck_assert_msg (at - from == rd, "prefix %zu: read %zu, want %zu", k, rd,
                   at - from);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_INVALID);
    if (0 != (flags & F_CLOSE))
    {
      ck_assert_ptr_nonnull (p);
      MHD_websocket_free (ws, p);
    }
    else
      ck_assert_ptr_null (p);
    tu_stream_end (ws);
  }
}

/**
 * One length error of a single frame, checked on a server (masked) and
 * a client (unmasked) stream, with and without close frames on error:
 * the whole length field (@a form bytes from the frame's start) is
 * consumed, and the error is judged only once it is all there.
 */
static void
length_error (unsigned b0, uint64_t len, enum lform form, size_t max,
              int status)
{
  static const int roles[2] = { F_SERVER, F_CLIENT };
  static const int extra[4] = { 0, F_CLOSE, F_FRAG, F_FRAG | F_CLOSE };
  unsigned char in[32];
  size_t r;
  size_t e;
  for (r = 0; r < 2; r++)
  {
    size_t n = raw_header (in, b0, len, form, F_SERVER == roles[r]);
    /* A few payload bytes after the header: they are never reached. */
    memcpy (in + n, "xyz", 3);
    n += 3;
    for (e = 0; e < 4; e++)
    {
      struct tu_result res;
      int flags = roles[r] | extra[e];
      error_exactly_at (flags, max, in, n, 0, status, (size_t) form);
      if (0 == (flags & F_CLOSE) || F_SERVER == roles[r])
      {
        /* Also at every split and byte by byte through tu_decode. */
        tu_decode_every_split (&res, flags, max, in, n);
        ck_assert_uint_eq (res.count, 1);
        ck_assert_int_eq (res.ev[0].status, status);
        ck_assert_uint_eq (res.ev[0].offset, (size_t) form);
        tu_result_free (&res);
      }
    }
  }
}

START_TEST (test_fidelity_nonminimal_length_offsets)
{
  static const uint64_t l16[] = { 0, 1, 2, 100, 125 };
  static const uint64_t l64[] = { 0, 1, 125, 126, 0x1234, 0xFFFF };
  size_t i;
  /* (A 7-bit length is always in its shortest form.) */
  for (i = 0; i < sizeof (l16) / sizeof (l16[0]); i++)
  {
    length_error (FIN | OP_BIN, l16[i], L16, 0, ST_PROTO);
    length_error (OP_TEXT, l16[i], L16, 1000, ST_PROTO);
  }
  for (i = 0; i < sizeof (l64) / sizeof (l64[0]); i++)
  {
    length_error (FIN | OP_TEXT, l64[i], L64, 0, ST_PROTO);
    length_error (OP_BIN, l64[i], L64, 10, ST_PROTO);
  }
}
END_TEST

START_TEST (test_fidelity_top_bit_length_offsets)
{
  static const uint64_t lens[] = { UINT64_C (0x8000000000000000),
                                   UINT64_C (0x8000000000010000),
                                   UINT64_C (0xFFFFFFFFFFFFFFFF) };
  static const size_t limits[] = { 0, 1, 70000 };
  size_t i;
  size_t j;
  /* Only a 64-bit length has a top bit; it is judged with the whole
     field, also when a limit would refuse it too. */
  for (i = 0; i < 3; i++)
    for (j = 0; j < 3; j++)
      length_error (FIN | OP_BIN, lens[i], L64, limits[j], ST_PROTO);
}
END_TEST

START_TEST (test_fidelity_frame_over_limit_offsets)
{
  /* Every length form, every frame kind the limit applies to. */
  length_error (FIN | OP_BIN, 11, L7, 10, ST_MAX);
  length_error (FIN | OP_TEXT, 125, L7, 124, ST_MAX);
  length_error (OP_TEXT, 11, L7, 10, ST_MAX);
  length_error (FIN | OP_PING, 11, L7, 10, ST_MAX);
  length_error (FIN | OP_PONG, 2, L7, 1, ST_MAX);
  length_error (FIN | OP_CLOSE, 5, L7, 4, ST_MAX);
  length_error (FIN | OP_BIN, 300, L16, 299, ST_MAX);
  length_error (OP_TEXT, 0xFFFF, L16, 126, ST_MAX);
  length_error (FIN | OP_BIN, 70000, L64, 69999, ST_MAX);
  length_error (OP_BIN, 65536, L64, 1, ST_MAX);
  length_error (FIN | OP_TEXT, UINT64_C (0x7FFFFFFFFFFFFFFF), L64, 1000,
                ST_MAX);
}
END_TEST

/**
 * A message grown past the limit by a continuation that fits alone: the
 * continuation's whole header, masking key included, is consumed first.
 * @a first is the first fragment's payload (text, no FIN), the
 * continuation announces @a len in form @a form.
 */
static void
message_error (int flags, const char *first, size_t first_len, uint64_t len,
               enum lform form, size_t max)
{
  int masked = 0 == (flags & F_CLIENT);
  unsigned char in[64];
  size_t n = tu_frame (in, OP_TEXT, first, first_len, masked ? MK : NULL);
  size_t start = n;
  struct tu_result res;
  n += raw_header (in + n, FIN | OP_CONT, len, form, masked);
  error_exactly_at (flags, max, in, n, start, ST_MAX, n);
  if ((0 != (flags & F_CLOSE)) && ! masked)
    return; /* client close frames carry a fresh random mask each time */
  memcpy (in + n, "abc", 3);
  tu_decode_every_split (&res, flags, max, in, n + 3);
  ck_assert_int_eq (res.ev[res.count - 1].status, ST_MAX);
  ck_assert_uint_eq (res.ev[res.count - 1].offset,
                     start + (size_t) form + (masked ? 4 : 0));
  tu_result_free (&res);
}

START_TEST (test_fidelity_message_over_limit_offsets)
{
  static const int roles[2] = { F_SERVER, F_CLIENT };
  size_t r;
  for (r = 0; r < 2; r++)
  {
    int f = roles[r];
    /* Reassembled (NO_FRAGMENTS): 5 buffered + the continuation. */
    message_error (f, "01234", 5, 6, L7, 10);
    message_error (f, "01234", 5, 126, L16, 130);
    message_error (f, "01234", 5, 65536, L64, 65540);
    message_error (f | F_CLOSE, "01234", 5, 65536, L64, 65540);
    /* WANT_FRAGMENTS: only the start of a character held back from the
       previous fragment counts with the next one. */
    message_error (f | F_FRAG, "0123\xC3", 5, 10, L7, 10);
    message_error (f | F_FRAG, "012\xE2\x82", 5, 299, L16, 300);
    message_error (f | F_FRAG | F_CLOSE, "01\xF0\x9F\x98", 5, 65536, L64,
                   65538);
  }
}
END_TEST

/* The same continuations are fine where they fit: with WANT_FRAGMENTS and
   nothing held back each fragment stands alone, and a continuation over
   the limit on its own is a length rule (whole length field consumed). */
START_TEST (test_fidelity_fragments_within_limit_and_alone_over_it)
{
  static const int roles[2] = { F_SERVER, F_CLIENT };
  size_t r;
  for (r = 0; r < 2; r++)
  {
    int masked = F_SERVER == roles[r];
    unsigned char in[64];
    size_t n = tu_frame (in, OP_BIN, "01234", 5, masked ? MK : NULL);
    size_t start = n;
    struct MHD_WebSocketStream *ws;
    size_t rd;
    char *p;
    size_t pl;
    n += raw_header (in + n, OP_CONT, 10, L7, masked);
    /* WANT_FRAGMENTS, limit 10: 5 then 10 is fine. */
    ws = tu_stream (roles[r] | F_FRAG, 10);
    ck_assert_int_eq (dec (ws, in, n, &rd, &p, &pl), ST_BIN_FIRST);
    MHD_websocket_free (ws, p);
    ck_assert_int_eq (dec (ws, in + rd, n - rd, &rd, &p, &pl), ST_OK);
    ck_assert_uint_eq (rd, n - start);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_VALID);
    tu_stream_end (ws);
    /* A continuation of 11 > 10 alone: offset after its length byte. */
    n = start + raw_header (in + start, OP_CONT, 11, L7, masked);
    error_exactly_at (roles[r] | F_FRAG, 10, in, n, start, ST_MAX, start + 2);
    error_exactly_at (roles[r], 10, in, n, start, ST_MAX, start + 2);
    n = start + raw_header (in + start, OP_CONT, 70000, L64, masked);
    error_exactly_at (roles[r] | F_FRAG, 69999, in, n, start, ST_MAX,
                      start + 10);
  }
}
END_TEST

/* ------------------------------------------- fidelity: close validity */

START_TEST (test_fidelity_close_first_byte_sets_control_only)
{
  static const int roles[2] = { F_SERVER, F_CLIENT };
  size_t r;
  for (r = 0; r < 2; r++)
  {
    int masked = F_SERVER == roles[r];
    unsigned char in[64];
    size_t n;
    size_t i;
    size_t rd;
    char *p;
    size_t pl;
    struct MHD_WebSocketStream *ws = tu_stream (roles[r], 0);
    n = tu_frame (in, FIN | OP_CLOSE,
                  "\x03\xE8"
                  "bye",
                  5, masked ? MK : NULL);
    /* Byte by byte: ONLY_VALID_FOR_CONTROL_FRAMES from the first on. */
    for (i = 0; i + 1 < n; i++)
    {
      ck_assert_int_eq (dec (ws, in + i, 1, &rd, &p, &pl), ST_OK);
      ck_assert_uint_eq (rd, 1);
      ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_CONTROL);
    }
    ck_assert_int_eq (dec (ws, in + i, 1, &rd, &p, &pl), ST_CLOSE);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_CONTROL);
    MHD_websocket_free (ws, p);
    tu_stream_end (ws);

    /* In the middle of a fragmented message too; a broken second byte
       then makes it INVALID. */
    ws = tu_stream (roles[r], 0);
    n = tu_frame (in, OP_TEXT, "ab", 2, masked ? MK : NULL);
    ck_assert_int_eq (dec (ws, in, n, &rd, &p, &pl), ST_OK);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_VALID);
    in[0] = FIN | OP_CLOSE;
    ck_assert_int_eq (dec (ws, in, 1, &rd, &p, &pl), ST_OK);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_CONTROL);
    in[0] = masked ? 0x00 : 0x80; /* the wrong mask bit */
    ck_assert_int_eq (dec (ws, in, 1, &rd, &p, &pl), ST_PROTO);
    ck_assert_uint_eq (rd, 0);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_INVALID);
    tu_stream_end (ws);

    /* Ping and pong first bytes change nothing; a fragmented close
       frame is an error at its first byte, not a close. */
    ws = tu_stream (roles[r], 0);
    in[0] = FIN | OP_PING;
    ck_assert_int_eq (dec (ws, in, 1, &rd, &p, &pl), ST_OK);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_VALID);
    tu_stream_end (ws);
    ws = tu_stream (roles[r], 0);
    in[0] = OP_CLOSE;
    ck_assert_int_eq (dec (ws, in, 1, &rd, &p, &pl), ST_PROTO);
    ck_assert_uint_eq (rd, 0);
    ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_INVALID);
    tu_stream_end (ws);
  }
}
END_TEST

START_TEST (test_huge_announced_length_costs_nothing)
{
  static const unsigned char h[10] = { 0x82, 0xFF, 0x7F, 0xFF, 0xFF,
                                       0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  struct bb b = { 0 };
  size_t rd;
  char *payload;
  size_t plen;
  size_t i;
  bb_raw (&b, h, 10);
  bb_raw (&b, MK, 4);
  ck_assert_int_eq (dec (ws, b.d, b.n, &rd, &payload, &plen), ST_OK);
  ck_assert_uint_eq (rd, 14);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_VALID);
  ck_assert_uint_le (tu_alloc_largest, 2 * 14 + 65536);
  b.n = 0;
  for (i = 0; i < 1000; i++)
  {
    unsigned char c = (unsigned char) (i ^ MK[i & 3]);
    bb_raw (&b, &c, 1);
  }
  /* In two calls, then byte by byte for a while. */
  ck_assert_int_eq (dec (ws, b.d, 600, &rd, &payload, &plen), ST_OK);
  ck_assert_uint_eq (rd, 600);
  ck_assert_int_eq (dec (ws, b.d + 600, 400, &rd, &payload, &plen), ST_OK);
  ck_assert_uint_eq (rd, 400);
  ck_assert_uint_le (tu_alloc_largest, 2 * (14 + 1000) + 65536);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws), V_VALID);
  tu_stream_end (ws);
  bb_free (&b);
}
END_TEST

START_TEST (test_announced_length_not_preallocated)
{
  /* A 1 MiB frame whose bytes trickle in: allocations follow what
     arrived, not what was announced. */
  unsigned char *p = pattern (MIB);
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  struct bb b = { 0 };
  size_t rd;
  char *payload;
  size_t plen;
  size_t pos, hdr;
  bb_m (&b, FIN | OP_BIN, p, MIB);
  hdr = b.n - MIB;
  ck_assert_int_eq (dec (ws, b.d, hdr, &rd, &payload, &plen), ST_OK);
  ck_assert_uint_le (tu_alloc_largest, 2 * hdr + 65536);
  for (pos = hdr; pos < hdr + 200000; pos += 10000)
  {
    ck_assert_int_eq (dec (ws, b.d + pos, 10000, &rd, &payload, &plen), ST_OK);
    ck_assert_uint_le (tu_alloc_largest, 2 * (pos + 10000) + 65536);
  }
  ck_assert_int_eq (dec (ws, b.d + pos, b.n - pos, &rd, &payload, &plen),
                    ST_BIN);
  ck_assert_uint_eq (plen, MIB);
  ck_assert_mem_eq (payload, p, MIB);
  MHD_websocket_free (ws, payload);
  tu_stream_end (ws);
  bb_free (&b);
  free (p);
}
END_TEST

START_TEST (test_many_small_fragments_grow_geometrically)
{
  struct bb b = { 0 };
  unsigned char *want = malloc (50000);
  struct tu_result r;
  size_t i;
  ck_assert_ptr_nonnull (want);
  for (i = 0; i < 50000; i++)
    want[i] = (unsigned char) ('a' + i % 26);
  for (i = 0; i < 5000; i++)
    bb_m (&b, ((0 == i) ? OP_TEXT : OP_CONT) | ((4999 == i) ? FIN : 0),
          want + 10 * i, 10);
  tu_alloc_reset ();
  tu_decode (&r, F_SERVER, 0, b.d, b.n, 0, 0);
  tu_expect_one (&r, ST_TEXT, want, 50000);
  /* One call per fragment, where the original made it (contract
     section 6), but the buffer is resized only a few times. */
  ck_assert_int_eq (tu_alloc_calls, 5000);
  ck_assert_msg (tu_alloc_resizes < 40, "%ld resizes for 5000 fragments",
                 tu_alloc_resizes);
  tu_result_free (&r);
  /* Also when fed in 4 KiB chunks. */
  tu_alloc_reset ();
  tu_decode (&r, F_SERVER, 0, b.d, b.n, 4096, 4096);
  tu_expect_one (&r, ST_TEXT, want, 50000);
  ck_assert_int_eq (tu_alloc_calls, 5000);
  ck_assert_msg (tu_alloc_resizes < 40, "%ld resizes (4 KiB chunks)",
                 tu_alloc_resizes);
  tu_result_free (&r);
  /* Same with binary and a 16-byte fragment size, byte 0 opcode 2. */
  b.n = 0;
  for (i = 0; i < 3125; i++)
    bb_m (&b, ((0 == i) ? OP_BIN : OP_CONT) | ((3124 == i) ? FIN : 0),
          want + 16 * i, 16);
  tu_alloc_reset ();
  tu_decode (&r, F_SERVER, 0, b.d, b.n, 0, 0);
  tu_expect_one (&r, ST_BIN, want, 50000);
  ck_assert_int_eq (tu_alloc_calls, 3125);
  ck_assert_msg (tu_alloc_resizes < 40, "%ld resizes (binary)",
                 tu_alloc_resizes);
  tu_result_free (&r);
  free (want);
  bb_free (&b);
}
END_TEST

/* ------------------------------------------------------------ fragments */

START_TEST (test_no_fragments_reassembles_text_and_binary)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, OP_TEXT, "He");
  bb_ms (&b, OP_CONT, "l");
  bb_ms (&b, OP_CONT, "lo, ");
  bb_ms (&b, FIN | OP_CONT, "world");
  bb_m (&b, OP_BIN, "\x00\x01", 2);
  bb_m (&b, FIN | OP_CONT, "\x02\x00", 2);
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 2);
  expect_evs (&r, 0, ST_TEXT, "Hello, world");
  expect_ev (&r, 1, ST_BIN, "\x00\x01\x02\x00", 4);
  ck_assert_int_eq (r.validity, V_VALID);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_no_fragments_with_empty_fragments)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_m (&b, OP_TEXT, NULL, 0);
  bb_ms (&b, OP_CONT, "ab");
  bb_m (&b, OP_CONT, NULL, 0);
  bb_ms (&b, FIN | OP_CONT, "c");
  bb_ms (&b, OP_BIN, "xy");
  bb_m (&b, FIN | OP_CONT, NULL, 0);
  /* A message of empty fragments only is an empty message. */
  bb_m (&b, OP_TEXT, NULL, 0);
  bb_m (&b, FIN | OP_CONT, NULL, 0);
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 3);
  expect_evs (&r, 0, ST_TEXT, "abc");
  expect_evs (&r, 1, ST_BIN, "xy");
  expect_ev (&r, 2, ST_TEXT, NULL, 0);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_want_fragments_unfragmented_frame_is_whole)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, FIN | OP_TEXT, "text");
  bb_ms (&b, FIN | OP_BIN, "bin");
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 2);
  expect_evs (&r, 0, ST_TEXT, "text");
  expect_evs (&r, 1, ST_BIN, "bin");
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_want_fragments_first_next_last)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, OP_TEXT, "one");
  bb_ms (&b, OP_CONT, "two");
  bb_ms (&b, OP_CONT, "three");
  bb_ms (&b, FIN | OP_CONT, "four");
  bb_ms (&b, OP_BIN, "b1");
  bb_ms (&b, FIN | OP_CONT, "b2");
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 6);
  expect_evs (&r, 0, ST_TEXT_FIRST, "one");
  expect_evs (&r, 1, ST_TEXT_NEXT, "two");
  expect_evs (&r, 2, ST_TEXT_NEXT, "three");
  expect_evs (&r, 3, ST_TEXT_LAST, "four");
  expect_evs (&r, 4, ST_BIN_FIRST, "b1");
  expect_evs (&r, 5, ST_BIN_LAST, "b2");
  ck_assert_int_eq (r.validity, V_VALID);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_want_fragments_empty_fragments)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_m (&b, OP_TEXT, NULL, 0);
  bb_m (&b, OP_CONT, NULL, 0);
  bb_ms (&b, OP_CONT, "x");
  bb_m (&b, FIN | OP_CONT, NULL, 0);
  bb_m (&b, OP_BIN, NULL, 0);
  bb_m (&b, FIN | OP_CONT, NULL, 0);
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 6);
  expect_ev (&r, 0, ST_TEXT_FIRST, NULL, 0);
  expect_ev (&r, 1, ST_TEXT_NEXT, NULL, 0);
  expect_evs (&r, 2, ST_TEXT_NEXT, "x");
  expect_ev (&r, 3, ST_TEXT_LAST, NULL, 0);
  expect_ev (&r, 4, ST_BIN_FIRST, NULL, 0);
  expect_ev (&r, 5, ST_BIN_LAST, NULL, 0);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_want_fragments_holds_back_cut_2byte_char)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, OP_TEXT, "a\xC3");
  bb_ms (&b, FIN | OP_CONT,
         "\xA9"
         "b");
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 2);
  expect_evs (&r, 0, ST_TEXT_FIRST, "a");
  expect_evs (&r, 1, ST_TEXT_LAST,
              "\xC3\xA9"
              "b");
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_want_fragments_holds_back_cut_4byte_char)
{
  static const char ch[] = "\xF0\x9F\x98\x80";
  size_t cut;
  for (cut = 1; cut < 4; cut++)
  {
    struct bb b = { 0 };
    struct tu_result r;
    char t1[8] = "x";
    char t2[8];
    char w2[8];
    memcpy (t1 + 1, ch, cut);
    memcpy (t2, ch + cut, 4 - cut);
    t2[4 - cut] = 'y';
    memcpy (w2, ch, 4);
    w2[4] = 'y';
    bb_m (&b, OP_TEXT, t1, 1 + cut);
    bb_m (&b, FIN | OP_CONT, t2, 5 - cut);
    tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
    ck_assert_uint_eq (r.count, 2);
    expect_evs (&r, 0, ST_TEXT_FIRST, "x");
    expect_ev (&r, 1, ST_TEXT_LAST, w2, 5);
    tu_result_free (&r);
    /* The same cut between a middle and the last fragment. */
    b.n = 0;
    bb_ms (&b, OP_TEXT, "s");
    bb_m (&b, OP_CONT, t1, 1 + cut);
    bb_m (&b, FIN | OP_CONT, t2, 5 - cut);
    tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
    ck_assert_uint_eq (r.count, 3);
    expect_evs (&r, 0, ST_TEXT_FIRST, "s");
    expect_evs (&r, 1, ST_TEXT_NEXT, "x");
    expect_ev (&r, 2, ST_TEXT_LAST, w2, 5);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_want_fragments_partial_only_fragment_is_empty)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, OP_TEXT, "a");
  bb_ms (&b, OP_CONT, "\xF0\x9F");
  bb_ms (&b, OP_CONT, "\x98");
  bb_ms (&b, FIN | OP_CONT,
         "\x80"
         "b");
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 4);
  expect_evs (&r, 0, ST_TEXT_FIRST, "a");
  expect_ev (&r, 1, ST_TEXT_NEXT, NULL, 0);
  expect_ev (&r, 2, ST_TEXT_NEXT, NULL, 0);
  expect_evs (&r, 3, ST_TEXT_LAST,
              "\xF0\x9F\x98\x80"
              "b");
  tu_result_free (&r);
  /* A first fragment that is only a lead byte: FIRST is empty. */
  b.n = 0;
  bb_ms (&b, OP_TEXT, "\xE2");
  bb_ms (&b, OP_CONT, "\x82\xAC\xE2\x82");
  bb_ms (&b, FIN | OP_CONT, "\xAC");
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 3);
  expect_ev (&r, 0, ST_TEXT_FIRST, NULL, 0);
  expect_evs (&r, 1, ST_TEXT_NEXT, "\xE2\x82\xAC");
  expect_evs (&r, 2, ST_TEXT_LAST, "\xE2\x82\xAC");
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_want_fragments_binary_not_held_back)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, OP_BIN, "a\xC3");
  bb_ms (&b, FIN | OP_CONT, "\xA9");
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 2);
  expect_evs (&r, 0, ST_BIN_FIRST, "a\xC3");
  expect_evs (&r, 1, ST_BIN_LAST, "\xA9");
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

/* ------------------------------------------------------------ control/close */

START_TEST (test_control_frames_between_fragments_no_fragments)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, OP_TEXT, "Hel");
  bb_ms (&b, FIN | OP_PING, "ping");
  bb_ms (&b, OP_CONT, "l");
  bb_m (&b, FIN | OP_PONG, NULL, 0);
  bb_ms (&b, FIN | OP_PING, "again");
  bb_ms (&b, FIN | OP_CONT, "o");
  bb_ms (&b, FIN | OP_TEXT, "next");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 5);
  expect_evs (&r, 0, ST_PING, "ping");
  expect_ev (&r, 1, ST_PONG, NULL, 0);
  expect_evs (&r, 2, ST_PING, "again");
  expect_evs (&r, 3, ST_TEXT, "Hello");
  expect_evs (&r, 4, ST_TEXT, "next");
  ck_assert_int_eq (r.validity, V_VALID);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_control_frames_between_fragments_want_fragments)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, OP_TEXT, "a\xC3");
  bb_ms (&b, FIN | OP_PING, "p");
  bb_ms (&b, OP_CONT,
         "\xA9"
         "b");
  bb_ms (&b, FIN | OP_PONG, "q");
  bb_ms (&b, FIN | OP_CONT, "c");
  tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 5);
  expect_evs (&r, 0, ST_TEXT_FIRST, "a");
  expect_evs (&r, 1, ST_PING, "p");
  expect_evs (&r, 2, ST_TEXT_NEXT,
              "\xC3\xA9"
              "b");
  expect_evs (&r, 3, ST_PONG, "q");
  expect_evs (&r, 4, ST_TEXT_LAST, "c");
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_close_frame_payload_and_validity)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, FIN | OP_CLOSE,
         "\x03\xE8"
         "bye");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  tu_expect_one (&r, ST_CLOSE,
                 "\x03\xE8"
                 "bye",
                 5);
  ck_assert_int_eq (r.validity, V_CONTROL);
  tu_result_free (&r);
  b.n = 0;
  bb_m (&b, FIN | OP_CLOSE, NULL, 0);
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  tu_expect_one (&r, ST_CLOSE, NULL, 0);
  ck_assert_int_eq (r.validity, V_CONTROL);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_control_frames_still_decode_after_close)
{
  struct bb b = { 0 };
  struct tu_result r;
  bb_ms (&b, FIN | OP_CLOSE, "\x03\xE8");
  bb_ms (&b, FIN | OP_PING, "ping");
  bb_ms (&b, FIN | OP_PONG, "pong");
  bb_ms (&b, FIN | OP_CLOSE,
         "\x03\xE9"
         "again");
  bb_m (&b, FIN | OP_CLOSE, NULL, 0);
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 5);
  expect_evs (&r, 0, ST_CLOSE, "\x03\xE8");
  expect_evs (&r, 1, ST_PING, "ping");
  expect_evs (&r, 2, ST_PONG, "pong");
  expect_evs (&r, 3, ST_CLOSE,
              "\x03\xE9"
              "again");
  expect_ev (&r, 4, ST_CLOSE, NULL, 0);
  ck_assert_int_eq (r.validity, V_CONTROL);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_data_frames_after_close_rejected)
{
  static const unsigned data[] = { FIN | OP_TEXT, OP_TEXT,       FIN | OP_BIN,
                                   OP_BIN,        FIN | OP_CONT, OP_CONT };
  size_t i;
  for (i = 0; i < sizeof (data) / sizeof (data[0]); i++)
  {
    struct bb b = { 0 };
    struct tu_result r;
    size_t l;
    bb_ms (&b, FIN | OP_CLOSE, "\x03\xE8");
    bb_ms (&b, FIN | OP_PING, "p");
    l = b.n;
    bb_ms (&b, data[i], "x");
    tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
    expect_evs (&r, 0, ST_CLOSE, "\x03\xE8");
    expect_evs (&r, 1, ST_PING, "p");
    expect_err (&r, 2, ST_PROTO, l);
    tu_result_free (&r);
    tu_decode_every_split (&r, F_SERVER | F_FRAG, 0, b.d, b.n);
    expect_err (&r, 2, ST_PROTO, l);
    tu_result_free (&r);
    bb_free (&b);
  }
}
END_TEST

START_TEST (test_continuation_after_close_mid_message_rejected)
{
  struct bb b = { 0 };
  struct tu_result r;
  size_t l;
  bb_ms (&b, OP_TEXT, "part");
  bb_m (&b, FIN | OP_CLOSE, NULL, 0);
  l = b.n;
  bb_ms (&b, FIN | OP_CONT, "rest");
  tu_decode_every_split (&r, F_SERVER, 0, b.d, b.n);
  expect_ev (&r, 0, ST_CLOSE, NULL, 0);
  expect_err (&r, 1, ST_PROTO, l);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

/* ------------------------------------------------------------ client */

START_TEST (test_client_decodes_unmasked_frames)
{
  struct bb b = { 0 };
  struct tu_result r;
  unsigned char *p = pattern (300);
  bb_u (&b, FIN | OP_TEXT, "Hello", 5);
  bb_u (&b, OP_BIN, p, 200);
  bb_u (&b, FIN | OP_PING, "p", 1);
  bb_u (&b, FIN | OP_CONT, p + 200, 100);
  bb_u (&b, FIN | OP_CLOSE,
        "\x03\xE8"
        "bye",
        5);
  bb_u (&b, FIN | OP_PONG, NULL, 0);
  tu_decode_every_split (&r, F_CLIENT, 0, b.d, b.n);
  ck_assert_uint_eq (r.count, 5);
  expect_evs (&r, 0, ST_TEXT, "Hello");
  expect_evs (&r, 1, ST_PING, "p");
  expect_ev (&r, 2, ST_BIN, p, 300);
  expect_evs (&r, 3, ST_CLOSE,
              "\x03\xE8"
              "bye");
  expect_ev (&r, 4, ST_PONG, NULL, 0);
  ck_assert_int_eq (r.validity, V_CONTROL);
  tu_result_free (&r);
  bb_free (&b);
  free (p);
}
END_TEST

START_TEST (test_client_rejects_masked_frame_mid_stream)
{
  struct bb b = { 0 };
  struct tu_result r;
  size_t l;
  bb_u (&b, OP_TEXT, "ab", 2);
  l = b.n;
  bb_ms (&b, FIN | OP_CONT, "c");
  tu_decode_every_split (&r, F_CLIENT | F_FRAG, 0, b.d, b.n);
  expect_evs (&r, 0, ST_TEXT_FIRST, "ab");
  expect_err (&r, 1, ST_PROTO, l + 1);
  tu_result_free (&r);
  bb_free (&b);
}
END_TEST

START_TEST (test_client_utf8_and_limits)
{
  struct bb b = { 0 };
  struct tu_result r;
  unsigned char *p = pattern (300);
  bb_u (&b, FIN | OP_TEXT, "ok\xF4\x90", 4);
  tu_decode_every_split (&r, F_CLIENT, 0, b.d, b.n);
  expect_err (&r, 0, ST_UTF8, 2 + 3);
  tu_result_free (&r);
  b.n = 0;
  bb_u (&b, FIN | OP_BIN, p, 300);
  tu_decode_every_split (&r, F_CLIENT, 299, b.d, b.n);
  expect_err (&r, 0, ST_MAX, 4);
  tu_result_free (&r);
  bb_free (&b);
  free (p);
}
END_TEST

/* ----------------------------------------------- split_close_reason */

START_TEST (test_split_close_reason_basics)
{
  static const char p[] = "\x03\xE8hi";
  unsigned short code = 7;
  const char *text = p;
  size_t tlen = 7;
  ck_assert_int_eq (
    MHD_websocket_split_close_reason (p, 4, &code, &text, &tlen), ST_OK);
  ck_assert_uint_eq (code, 1000);
  ck_assert_ptr_eq (text, p + 2);
  ck_assert_uint_eq (tlen, 2);
}
END_TEST

START_TEST (test_split_close_reason_empty)
{
  unsigned short code = 7;
  const char *text = "garbage";
  size_t tlen = 7;
  ck_assert_int_eq (
    MHD_websocket_split_close_reason ("", 0, &code, &text, &tlen), ST_OK);
  ck_assert_uint_eq (code, MHD_WEBSOCKET_CLOSEREASON_NO_REASON);
  ck_assert_ptr_null (text);
  ck_assert_uint_eq (tlen, 0);
  /* A NULL payload with length 0 is fine too. */
  code = 7;
  text = "garbage";
  tlen = 7;
  ck_assert_int_eq (
    MHD_websocket_split_close_reason (NULL, 0, &code, &text, &tlen), ST_OK);
  ck_assert_uint_eq (code, 0);
  ck_assert_ptr_null (text);
  ck_assert_uint_eq (tlen, 0);
}
END_TEST

START_TEST (test_split_close_reason_one_byte_is_protocol_error)
{
  unsigned short code = 7;
  const char *text = "garbage";
  size_t tlen = 7;
  ck_assert_int_eq (
    MHD_websocket_split_close_reason ("\x03", 1, &code, &text, &tlen),
    ST_PROTO);
  ck_assert_uint_eq (code, 0);
  ck_assert_ptr_null (text);
  ck_assert_uint_eq (tlen, 0);
}
END_TEST

START_TEST (test_split_close_reason_over_125_is_size_error)
{
  char p[200];
  unsigned short code = 7;
  const char *text = "garbage";
  size_t tlen = 7;
  memset (p, 'a', sizeof (p));
  p[0] = 0x03;
  p[1] = (char) 0xE8;
  ck_assert_int_eq (
    MHD_websocket_split_close_reason (p, 126, &code, &text, &tlen), ST_MAX);
  ck_assert_uint_eq (code, 0);
  ck_assert_ptr_null (text);
  ck_assert_uint_eq (tlen, 0);
  ck_assert_int_eq (
    MHD_websocket_split_close_reason (p, 200, &code, &text, &tlen), ST_MAX);
  /* 125 is the largest accepted. */
  ck_assert_int_eq (
    MHD_websocket_split_close_reason (p, 125, &code, &text, &tlen), ST_OK);
  ck_assert_uint_eq (code, 1000);
  ck_assert_ptr_eq (text, p + 2);
  ck_assert_uint_eq (tlen, 123);
}
END_TEST

START_TEST (test_split_close_reason_code_only)
{
  static const char p[] = "\x0F\xA0";
  unsigned short code = 7;
  const char *text = "garbage";
  size_t tlen = 7;
  ck_assert_int_eq (
    MHD_websocket_split_close_reason (p, 2, &code, &text, &tlen), ST_OK);
  ck_assert_uint_eq (code, 4000);
  ck_assert_ptr_null (text);
  ck_assert_uint_eq (tlen, 0);
}
END_TEST

START_TEST (test_split_close_reason_code_and_text_big_endian)
{
  static const char p[] = "\xFF\x01reason";
  unsigned short code = 7;
  const char *text = NULL;
  size_t tlen = 0;
  ck_assert_int_eq (
    MHD_websocket_split_close_reason (p, 8, &code, &text, &tlen), ST_OK);
  ck_assert_uint_eq (code, 0xFF01);
  ck_assert_ptr_eq (text, p + 2);
  ck_assert_uint_eq (tlen, 6);
  ck_assert_mem_eq (text, "reason", 6);
}
END_TEST

START_TEST (test_split_close_reason_out_pointers_optional)
{
  static const char p[] = "\x03\xE9xy";
  unsigned short code = 7;
  const char *text = NULL;
  size_t tlen = 0;
  ck_assert_int_eq (MHD_websocket_split_close_reason (p, 4, NULL, NULL, NULL),
                    ST_OK);
  ck_assert_int_eq (MHD_websocket_split_close_reason (p, 4, &code, NULL, NULL),
                    ST_OK);
  ck_assert_uint_eq (code, 1001);
  ck_assert_int_eq (MHD_websocket_split_close_reason (p, 4, NULL, &text, NULL),
                    ST_OK);
  ck_assert_ptr_eq (text, p + 2);
  ck_assert_int_eq (MHD_websocket_split_close_reason (p, 4, NULL, NULL, &tlen),
                    ST_OK);
  ck_assert_uint_eq (tlen, 2);
  ck_assert_int_eq (MHD_websocket_split_close_reason (p, 1, NULL, NULL, NULL),
                    ST_PROTO);
  ck_assert_int_eq (
    MHD_websocket_split_close_reason (NULL, 3, NULL, NULL, NULL), ST_PARAM);
}
END_TEST

START_TEST (test_split_close_reason_null_payload_with_length)
{
  unsigned short code = 7;
  const char *text = "garbage";
  size_t tlen = 7;
  ck_assert_int_eq (
    MHD_websocket_split_close_reason (NULL, 4, &code, &text, &tlen), ST_PARAM);
  ck_assert_uint_eq (code, 0);
  ck_assert_ptr_null (text);
  ck_assert_uint_eq (tlen, 0);
}
END_TEST

START_TEST (test_split_close_reason_of_decoded_close)
{
  struct MHD_WebSocketStream *ws = tu_stream (F_SERVER, 0);
  struct bb b = { 0 };
  size_t rd;
  char *payload;
  size_t plen;
  unsigned short code = 0;
  const char *text = NULL;
  size_t tlen = 0;
  bb_ms (&b, FIN | OP_CLOSE, "\x0B\xB8\xE2\x82\xAC bye");
  ck_assert_int_eq (dec (ws, b.d, b.n, &rd, &payload, &plen), ST_CLOSE);
  ck_assert_int_eq (
    MHD_websocket_split_close_reason (payload, plen, &code, &text, &tlen),
    ST_OK);
  ck_assert_uint_eq (code, 3000);
  ck_assert_uint_eq (tlen, 7);
  ck_assert_mem_eq (text, "\xE2\x82\xAC bye", 7);
  MHD_websocket_free (ws, payload);
  ck_assert_int_eq (MHD_websocket_stream_free (ws), ST_OK);
  bb_free (&b);
}
END_TEST

/* ------------------------------------------------------------ determinism */

static uint32_t prng_state;

/** xorshift32: a fixed, seedable sequence. */
static uint32_t
prng (void)
{
  uint32_t x = prng_state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  prng_state = x;
  return x;
}

static void
exp_add (struct tu_result *e, int status, const unsigned char *p, size_t len)
{
  struct tu_event *ev;
  ck_assert_uint_lt (e->count, TU_MAX_EVENTS);
  ev = &e->ev[e->count++];
  ev->status = status;
  ev->len = len;
  ev->offset = 0;
  ev->payload = NULL;
  if (len > 0)
  {
    ev->payload = malloc (len + 1);
    ck_assert_ptr_nonnull (ev->payload);
    memcpy (ev->payload, p, len);
    ev->payload[len] = '\0';
  }
}

/** Appends a frame masked with a random key. */
static void
rnd_frame (struct bb *b, unsigned b0, const void *p, size_t len)
{
  uint8_t key[4];
  uint32_t k = prng ();
  memcpy (key, &k, 4);
  bb_reserve (b, len + 14);
  b->n += tu_frame (b->d + b->n, b0, p, len, key);
}

/** Appends a random ping or pong (and its event). */
static void
rnd_control (struct bb *b, struct tu_result *e)
{
  unsigned char p[125];
  size_t len = prng () % 126;
  size_t i;
  int ping = (int) (prng () & 1);
  for (i = 0; i < len; i++)
    p[i] = (unsigned char) prng ();
  rnd_frame (b, FIN | (ping ? OP_PING : OP_PONG), p, len);
  exp_add (e, ping ? ST_PING : ST_PONG, p, len);
}

/**
 * Builds a random stream of text/binary messages (with random
 * fragmentation, controls between fragments, empty fragments and cut
 * characters) and the events expected in mode @a want_frag.
 * Stops before @a max_events events.
 */
static void
rnd_stream (struct bb *b, struct tu_result *e, int want_frag, size_t max_events,
            size_t *frames)
{
  static const char *const chars[] = { "a",
                                       "Z",
                                       " ",
                                       "\xC3\xA9",
                                       "\xD0\x96",
                                       "\xE2\x82\xAC",
                                       "\xE0\xA0\x80",
                                       "\xED\x9F\xBF",
                                       "\xF0\x9F\x98\x80",
                                       "\xF4\x8F\xBF\xBF" };
  unsigned char *m = malloc (70000);
  unsigned char *bnd = malloc (70001);
  ck_assert_ptr_nonnull (m);
  ck_assert_ptr_nonnull (bnd);
  memset (e, 0, sizeof (*e));
  e->validity = V_VALID;
  while (e->count + 12 < max_events)
  {
    uint32_t kind = prng () % 10;
    size_t len = 0;
    size_t nf, f, pos, done;
    int text;
    size_t cuts[12];
    if (kind >= 8)
    {
      rnd_control (b, e);
      (*frames)++;
      continue;
    }
    text = (kind < 4);
    memset (bnd, 0, 70001);
    bnd[0] = 1;
    if (text)
    {
      size_t nch = prng () % 60;
      size_t i;
      for (i = 0; i < nch; i++)
      {
        const char *c = chars[prng () % 10];
        size_t cl = strlen (c);
        memcpy (m + len, c, cl);
        len += cl;
        bnd[len] = 1;
      }
    }
    else
    {
      size_t i;
      len = (0 == prng () % 40) ? 66000 + prng () % 100 : prng () % 300;
      for (i = 0; i < len; i++)
        m[i] = (unsigned char) prng ();
    }
    nf = 1 + prng () % (want_frag ? 4 : 10);
    /* Sorted random cut points; equal ones give empty fragments. */
    for (f = 0; f + 1 < nf; f++)
    {
      size_t c = (0 == len) ? 0 : prng () % (len + 1);
      size_t k = f;
      while (k > 0 && cuts[k - 1] > c)
      {
        cuts[k] = cuts[k - 1];
        k--;
      }
      cuts[k] = c;
    }
    cuts[nf - 1] = len;
    pos = 0;
    done = 0;
    for (f = 0; f < nf; f++)
    {
      unsigned b0 = (0 == f) ? (text ? OP_TEXT : OP_BIN) : OP_CONT;
      if (f == nf - 1)
        b0 |= FIN;
      rnd_frame (b, b0, m + pos, cuts[f] - pos);
      (*frames)++;
      pos = cuts[f];
      if (want_frag)
      {
        int st;
        size_t upto = pos;
        if (text)
          while (! bnd[upto])
            upto--;
        if (1 == nf)
          st = text ? ST_TEXT : ST_BIN;
        else if (0 == f)
          st = text ? ST_TEXT_FIRST : ST_BIN_FIRST;
        else if (f == nf - 1)
          st = text ? ST_TEXT_LAST : ST_BIN_LAST;
        else
          st = text ? ST_TEXT_NEXT : ST_BIN_NEXT;
        exp_add (e, st, m + done, upto - done);
        done = upto;
      }
      /* Sometimes a control frame between fragments. */
      if (f + 1 < nf && 0 == prng () % 3)
      {
        rnd_control (b, e);
        (*frames)++;
      }
    }
    if (! want_frag)
      exp_add (e, text ? ST_TEXT : ST_BIN, m, len);
  }
  /* Half of the streams end with a close frame and a ping after it. */
  if (prng () & 1)
  {
    rnd_frame (b, FIN | OP_CLOSE,
               "\x03\xE8"
               "end",
               5);
    exp_add (e, ST_CLOSE,
             (const unsigned char *) "\x03\xE8"
                                     "end",
             5);
    rnd_control (b, e);
    *frames += 2;
    e->validity = V_CONTROL;
  }
  free (m);
  free (bnd);
}

static void
determinism_run (int want_frag, uint32_t seed)
{
  struct bb b = { 0 };
  struct tu_result e;
  struct tu_result whole;
  size_t frames = 0;
  int flags = F_SERVER | (want_frag ? F_FRAG : 0);
  int i;
  prng_state = seed;
  rnd_stream (&b, &e, want_frag, TU_MAX_EVENTS, &frames);
  e.consumed = b.n;
  if (! want_frag)
    ck_assert_uint_ge (frames, 100);
  tu_decode (&whole, flags, 0, b.d, b.n, 0, 0);
  same_result (&e, &whole, "whole input against expectation");
  for (i = 0; i < 12; i++)
  {
    struct tu_result other;
    char how[80];
    size_t first = 1 + prng () % 3000;
    /* Small steps only on small inputs: see decode_chunked. */
    size_t step = 1 + prng () % (((i & 1) && b.n < 20000) ? 17 : 5000);
    tu_decode (&other, flags, 0, b.d, b.n, first, step);
    snprintf (how, sizeof (how), "seed %u first %zu step %zu", seed, first,
              step);
    same_result (&whole, &other, how);
    tu_result_free (&other);
  }
  tu_result_free (&whole);
  tu_result_free (&e);
  bb_free (&b);
}

START_TEST (test_random_streams_same_events_any_chunking_no_fragments)
{
  uint32_t seed;
  for (seed = 1; seed <= 6; seed++)
    determinism_run (0, seed * 2654435761u);
}
END_TEST

START_TEST (test_random_streams_same_events_any_chunking_want_fragments)
{
  uint32_t seed;
  for (seed = 1; seed <= 8; seed++)
    determinism_run (1, seed * 40503u + 7);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *
decode_suite (void)
{
  Suite *s = suite_create ("decode");
  TCase *tc;

  tc = tcase_create ("basics");
  tcase_add_checked_fixture (tc, setup, NULL);
  /* Every-split decoding is quadratic; sanitizer builds are slow. */
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_rfc_single_frame_unmasked_hello_client);
  tcase_add_test (tc, test_rfc_single_frame_masked_hello_server);
  tcase_add_test (tc, test_rfc_fragmented_unmasked_hello_client);
  tcase_add_test (tc, test_rfc_unmasked_ping_and_masked_pong);
  tcase_add_test (tc, test_rfc_256_byte_binary_16bit_length);
  tcase_add_test (tc, test_rfc_64kib_binary_64bit_length);
  tcase_add_test (tc, test_outputs_reset_first);
  tcase_add_test (tc, test_parameter_errors);
  tcase_add_test (tc, test_null_buffer_with_zero_length_is_ok);
  tcase_add_test (tc, test_payload_size_1);
  tcase_add_test (tc, test_payload_size_125_last_7bit_length);
  tcase_add_test (tc, test_payload_size_126_first_16bit_length);
  tcase_add_test (tc, test_payload_size_65535_last_16bit_length);
  tcase_add_test (tc, test_payload_size_65536_first_64bit_length);
  tcase_add_test (tc, test_payload_size_1mib);
  tcase_add_test (tc, test_empty_payload_gives_null_and_frame_status);
  tcase_add_test (tc, test_payload_is_nul_terminated_and_freed_by_stream);
  tcase_add_test (tc, test_returns_ok_when_input_consumed_without_frame);
  tcase_add_test (tc, test_returns_after_one_frame_rest_in_next_call);
  tcase_add_test (tc, test_several_frames_in_one_buffer_every_split);
  tcase_add_test (tc, test_unmasking_every_length_and_key);
  tcase_add_test (tc, test_memory_error_keeps_stream_valid);
  suite_add_tcase (s, tc);

  tc = tcase_create ("framing");
  tcase_add_checked_fixture (tc, setup, NULL);
  /* Every-split decoding is quadratic; sanitizer builds are slow. */
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_client_rejects_masked_frame);
  tcase_add_test (tc, test_mask_mismatch_on_control_frames);
  tcase_add_test (tc, test_nonminimal_16bit_length_rejected);
  tcase_add_test (tc, test_nonminimal_64bit_length_rejected);
  tcase_add_test (tc, test_64bit_length_top_bit_rejected);
  tcase_add_test (tc, test_minimal_lengths_accepted_at_boundaries);
  tcase_add_test (tc, test_server_rejects_unmasked_frame);
  suite_add_tcase (s, tc);

  tc = tcase_create ("errors");
  tcase_add_checked_fixture (tc, setup, NULL);
  /* Every-split decoding is quadratic; sanitizer builds are slow. */
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_rsv_bits_are_protocol_errors);
  tcase_add_test (tc, test_reserved_opcodes_are_protocol_errors);
  tcase_add_test (tc, test_continuation_without_start_rejected);
  tcase_add_test (tc, test_data_frame_while_fragmented_message_open_rejected);
  tcase_add_test (tc, test_fragmented_control_frames_rejected);
  tcase_add_test (tc, test_control_frame_over_125_bytes_rejected);
  tcase_add_test (tc, test_control_frame_of_125_bytes_accepted);
  tcase_add_test (tc, test_close_payload_of_one_byte_rejected);
  tcase_add_test (tc, test_forbidden_close_codes_rejected);
  tcase_add_test (tc, test_allowed_close_codes_accepted);
  tcase_add_test (tc, test_error_offset_is_relative_to_this_call);
  tcase_add_test (tc, test_stream_broken_after_every_kind_of_error);
  tcase_add_test (tc, test_invalidated_stream_is_broken);
  tcase_add_test (tc, test_close_frame_on_protocol_error_is_1002);
  tcase_add_test (tc, test_close_frame_on_utf8_error_is_1007);
  tcase_add_test (tc, test_close_frame_on_size_error_is_1009);
  tcase_add_test (tc, test_client_close_frame_on_error_is_masked);
  tcase_add_test (tc, test_no_close_frame_without_flag);
  suite_add_tcase (s, tc);

  tc = tcase_create ("utf8");
  tcase_add_checked_fixture (tc, setup, NULL);
  /* Every-split decoding is quadratic; sanitizer builds are slow. */
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_valid_utf8_edges_accepted);
  tcase_add_test (tc, test_invalid_utf8_rejected_at_offending_byte);
  tcase_add_test (tc, test_invalid_utf8_found_at_every_word_position);
  tcase_add_test (tc, test_invalid_utf8_deep_in_large_frame);
  tcase_add_test (tc, test_invalid_utf8_fail_fast_before_frame_complete);
  tcase_add_test (tc, test_invalid_utf8_fail_fast_in_later_fragment);
  tcase_add_test (tc, test_invalid_sequence_cut_by_fragment_boundary);
  tcase_add_test (tc, test_valid_chars_split_across_fragments_accepted);
  tcase_add_test (tc, test_message_ending_in_truncated_sequence_rejected);
  tcase_add_test (tc, test_utf8_state_does_not_leak_between_messages);
  tcase_add_test (tc, test_binary_text_state_separate);
  tcase_add_test (tc, test_binary_ping_pong_not_validated);
  tcase_add_test (tc, test_close_reason_validated);
  tcase_add_test (tc, test_close_reason_ending_in_truncated_sequence_rejected);
  tcase_add_test (tc, test_close_reason_multibyte_split_across_calls);
  tcase_add_test (tc, test_close_between_fragments_has_own_utf8_state);
  tcase_add_test (tc, test_ping_between_fragments_keeps_text_utf8_state);
  suite_add_tcase (s, tc);

  tc = tcase_create ("limits");
  tcase_add_checked_fixture (tc, setup, NULL);
  /* Every-split decoding is quadratic; sanitizer builds are slow. */
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_frame_over_max_rejected_at_length_7bit);
  tcase_add_test (tc, test_frame_over_max_rejected_at_length_16bit);
  tcase_add_test (tc, test_frame_over_max_rejected_at_length_64bit);
  tcase_add_test (tc, test_frame_of_exactly_max_accepted);
  tcase_add_test (tc, test_control_frame_over_max_rejected);
  tcase_add_test (tc, test_reassembled_message_over_max_rejected);
  tcase_add_test (tc, test_control_frames_do_not_count_toward_message_size);
  tcase_add_test (tc, test_want_fragments_limit_bounds_each_frame);
  tcase_add_test (tc, test_huge_announced_length_costs_nothing);
  tcase_add_test (tc, test_fidelity_nonminimal_length_offsets);
  tcase_add_test (tc, test_fidelity_top_bit_length_offsets);
  tcase_add_test (tc, test_fidelity_frame_over_limit_offsets);
  tcase_add_test (tc, test_fidelity_message_over_limit_offsets);
  tcase_add_test (tc, test_fidelity_fragments_within_limit_and_alone_over_it);
  tcase_add_test (tc, test_fidelity_close_first_byte_sets_control_only);
  tcase_add_test (tc, test_announced_length_not_preallocated);
  tcase_add_test (tc, test_many_small_fragments_grow_geometrically);
  suite_add_tcase (s, tc);

  tc = tcase_create ("fragments");
  tcase_add_checked_fixture (tc, setup, NULL);
  /* Every-split decoding is quadratic; sanitizer builds are slow. */
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_no_fragments_reassembles_text_and_binary);
  tcase_add_test (tc, test_no_fragments_with_empty_fragments);
  tcase_add_test (tc, test_want_fragments_unfragmented_frame_is_whole);
  tcase_add_test (tc, test_want_fragments_first_next_last);
  tcase_add_test (tc, test_want_fragments_empty_fragments);
  tcase_add_test (tc, test_want_fragments_holds_back_cut_2byte_char);
  tcase_add_test (tc, test_want_fragments_holds_back_cut_4byte_char);
  tcase_add_test (tc, test_want_fragments_partial_only_fragment_is_empty);
  tcase_add_test (tc, test_want_fragments_binary_not_held_back);
  suite_add_tcase (s, tc);

  tc = tcase_create ("control and close");
  tcase_add_checked_fixture (tc, setup, NULL);
  /* Every-split decoding is quadratic; sanitizer builds are slow. */
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_control_frames_between_fragments_no_fragments);
  tcase_add_test (tc, test_control_frames_between_fragments_want_fragments);
  tcase_add_test (tc, test_close_frame_payload_and_validity);
  tcase_add_test (tc, test_control_frames_still_decode_after_close);
  tcase_add_test (tc, test_data_frames_after_close_rejected);
  tcase_add_test (tc, test_continuation_after_close_mid_message_rejected);
  suite_add_tcase (s, tc);

  tc = tcase_create ("client");
  tcase_add_checked_fixture (tc, setup, NULL);
  /* Every-split decoding is quadratic; sanitizer builds are slow. */
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_client_decodes_unmasked_frames);
  tcase_add_test (tc, test_client_rejects_masked_frame_mid_stream);
  tcase_add_test (tc, test_client_utf8_and_limits);
  suite_add_tcase (s, tc);

  tc = tcase_create ("split_close_reason");
  tcase_add_checked_fixture (tc, setup, NULL);
  /* Every-split decoding is quadratic; sanitizer builds are slow. */
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_split_close_reason_basics);
  tcase_add_test (tc, test_split_close_reason_empty);
  tcase_add_test (tc, test_split_close_reason_one_byte_is_protocol_error);
  tcase_add_test (tc, test_split_close_reason_over_125_is_size_error);
  tcase_add_test (tc, test_split_close_reason_code_only);
  tcase_add_test (tc, test_split_close_reason_code_and_text_big_endian);
  tcase_add_test (tc, test_split_close_reason_out_pointers_optional);
  tcase_add_test (tc, test_split_close_reason_null_payload_with_length);
  tcase_add_test (tc, test_split_close_reason_of_decoded_close);
  suite_add_tcase (s, tc);

  tc = tcase_create ("determinism");
  tcase_add_checked_fixture (tc, setup, NULL);
  /* Every-split decoding is quadratic; sanitizer builds are slow. */
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc,
                  test_random_streams_same_events_any_chunking_no_fragments);
  tcase_add_test (tc,
                  test_random_streams_same_events_any_chunking_want_fragments);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (decode_suite ());
  int failed;
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (failed > 0) ? EXIT_FAILURE : EXIT_SUCCESS;
}
