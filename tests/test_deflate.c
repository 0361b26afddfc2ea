/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_deflate.c
 * @brief Check suite for permessage-deflate (RFC 7692, contract section
 *        5): the RFC's example frames both ways, every parameter
 *        combination end to end, every split of the input, allocation
 *        failures at every allocation, the negotiation parser against
 *        well- and malformed headers, corrupt data, zip bombs, window
 *        bits 8, fragments, and the memory a connection holds.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <zlib.h>
#include "microhttpd_ws.h"
#include "testutil.h"

#define ST_OK MHD_WEBSOCKET_STATUS_OK
#define ST_TEXT MHD_WEBSOCKET_STATUS_TEXT_FRAME
#define ST_BINARY MHD_WEBSOCKET_STATUS_BINARY_FRAME
#define ST_PROTO MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR
#define ST_MEM MHD_WEBSOCKET_STATUS_MEMORY_ERROR
#define ST_PARAM MHD_WEBSOCKET_STATUS_PARAMETER_ERROR
#define ST_MAX MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED
#define ST_UTF8 MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR
#define ST_NOHDR MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER

#define F_NONE MHD_WEBSOCKET_FRAGMENTATION_NONE
#define F_FIRST MHD_WEBSOCKET_FRAGMENTATION_FIRST
#define F_FOLLOWING MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING
#define F_LAST MHD_WEBSOCKET_FRAGMENTATION_LAST

#define SNCT MHD_WEBSOCKET_DEFLATE_FLAG_SERVER_NO_CONTEXT_TAKEOVER
#define CNCT MHD_WEBSOCKET_DEFLATE_FLAG_CLIENT_NO_CONTEXT_TAKEOVER

#define CLIENT MHD_WEBSOCKET_FLAG_CLIENT
#define SERVER MHD_WEBSOCKET_FLAG_SERVER
#define FRAGS MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS
#define CLOSES MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR

static const uint8_t test_mask[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* ------------------------------------------------------------ helpers */

/** A stream with compression enabled as @a agreed says. */
static struct MHD_WebSocketStream *
pmd_stream (int flags, size_t max, const char *agreed)
{
  struct MHD_WebSocketStream *ws = tu_stream (flags, max);
  ck_assert_int_eq (MHD_websocket_stream_enable_deflate (ws, agreed, -1, 0, 0),
                    ST_OK);
  return ws;
}

/** What a decode run produced. */
struct ev
{
  int status;
  char *data;
  size_t len;
};

#define MAX_EV 64

struct run
{
  struct ev ev[MAX_EV];
  size_t n;
  /** MEMORY_ERROR returns that were retried. */
  unsigned retries;
};

static void
run_free (struct run *r)
{
  size_t i;
  for (i = 0; i < r->n; i++)
    free (r->ev[i].data);
  r->n = 0;
}

static void
run_record (struct run *r, int st, const char *p, size_t len)
{
  struct ev *e;
  ck_assert_uint_lt (r->n, MAX_EV);
  e = &r->ev[r->n++];
  e->status = st;
  e->len = len;
  e->data = malloc (len + 1);
  ck_assert_ptr_nonnull (e->data);
  if (0 != len)
    memcpy (e->data, p, len);
  e->data[len] = '\0';
}

/**
 * Feeds @a len bytes to @a ws: a first piece of @a first bytes, then
 * pieces of @a step (0: the rest).  MEMORY_ERROR is retried (with the
 * unconsumed rest, or with nothing when all was consumed).  Stops at the
 * first error, which is recorded with its close frame, if any, as data.
 */
static void
feed (struct MHD_WebSocketStream *ws, const void *data, size_t len,
      size_t first, size_t step, struct run *r)
{
  const char *in = data;
  size_t pos = 0;

  while (pos < len)
  {
    size_t chunk = (0 == pos) ? first : step;
    size_t off = 0;
    bool again = false;

    if ((0 == chunk) || (chunk > len - pos))
      chunk = len - pos;
    while ((off < chunk) || again)
    {
      size_t rd = 99;
      char *p = (char *) 1;
      size_t plen = 99;
      int st =
        MHD_websocket_decode (ws, in + pos + off, chunk - off, &rd, &p, &plen);
      TU_REQUIRE (rd <= chunk - off);
      if (NULL != p)
        TU_REQUIRE ('\0' == p[plen]);
      else
        TU_REQUIRE (0 == plen);
      off += rd;
      again = false;
      if (ST_MEM == st)
      {
        ck_assert_ptr_null (p);
        /* A sticky failure is lifted after a few tries. */
        if (++r->retries > 3)
          tu_alloc_fail_at = -1;
        ck_assert_uint_lt (r->retries, 1000);
        again = true;
        continue;
      }
      if (ST_OK != st)
        run_record (r, st, p, plen);
      if (NULL != p)
        MHD_websocket_free (ws, p);
      if (st < 0)
        return;
    }
    pos += chunk;
  }
}

/**
 * Asserts that two runs saw the same statuses and bytes.  With
 * @a close_may_be_lost, @a b may lack an error's close frame: when the
 * frame's own allocation fails, the error still comes, without it.
 */
static void
run_same (const struct run *a, const struct run *b, bool close_may_be_lost,
          const char *what)
{
  size_t i;
  ck_assert_msg (a->n == b->n, "%s: %u events against %u", what,
                 (unsigned) a->n, (unsigned) b->n);
  for (i = 0; i < a->n; i++)
  {
    ck_assert_msg (a->ev[i].status == b->ev[i].status,
                   "%s: event %u status %d against %d", what, (unsigned) i,
                   a->ev[i].status, b->ev[i].status);
    if (! (close_may_be_lost && (b->ev[i].status < 0) && (0 == b->ev[i].len)))
      ck_assert_uint_eq (a->ev[i].len, b->ev[i].len);
    /* A client's close frame on error is masked afresh each time. */
    if (a->ev[i].status > 0)
      ck_assert (0 == memcmp (a->ev[i].data, b->ev[i].data, a->ev[i].len));
  }
}

/**
 * Decodes @a data on fresh streams whole, split in two at every offset,
 * and one byte per call, then one byte per call again with each of that
 * run's allocations failing once (a failure at a message's last byte is
 * retried with no bytes at all); asserts all agree; leaves the whole run
 * in @a r.
 */
static void
decode_every_split (int flags, size_t max, const char *agreed, const void *data,
                    size_t len, struct run *r)
{
  struct MHD_WebSocketStream *ws;
  struct run other;
  size_t cut;
  long calls;
  long fail;

  memset (r, 0, sizeof (*r));
  ws = pmd_stream (flags, max, agreed);
  feed (ws, data, len, 0, 0, r);
  tu_stream_end (ws);
  for (cut = 1; cut <= len; cut++)
  {
    memset (&other, 0, sizeof (other));
    ws = pmd_stream (flags, max, agreed);
    feed (ws, data, len, cut, (cut == len) ? 0 : 1 + (cut % 3 ? len : 0),
          &other);
    tu_stream_end (ws);
    run_same (r, &other, false, "split");
    run_free (&other);
  }
  memset (&other, 0, sizeof (other));
  ws = pmd_stream (flags, max, agreed);
  calls = tu_alloc_calls;
  feed (ws, data, len, 1, 1, &other);
  calls = tu_alloc_calls - calls;
  tu_stream_end (ws);
  run_same (r, &other, false, "byte by byte");
  run_free (&other);
  for (fail = 0; fail < calls; fail++)
  {
    memset (&other, 0, sizeof (other));
    ws = pmd_stream (flags, max, agreed);
    tu_alloc_fail_at = tu_alloc_calls + fail;
    feed (ws, data, len, 1, 1, &other);
    tu_alloc_fail_at = -1;
    tu_stream_end (ws);
    run_same (r, &other, true, "byte by byte, an allocation failing");
    run_free (&other);
  }
}

/** Builds frames (masked when @a masked) from (b0, payload) pairs. */
static size_t
frames (uint8_t *out, bool masked, unsigned count, const unsigned *b0,
        const char *const *payload, const size_t *plen)
{
  size_t n = 0;
  unsigned i;
  for (i = 0; i < count; i++)
    n +=
      tu_frame (out + n, b0[i], payload[i], plen[i], masked ? test_mask : NULL);
  return n;
}

static void
expect_ev (const struct run *r, size_t i, int status, const void *data,
           size_t len)
{
  ck_assert_uint_gt (r->n, i);
  ck_assert_int_eq (r->ev[i].status, status);
  ck_assert_uint_eq (r->ev[i].len, len);
  if (0 != len)
    ck_assert (0 == memcmp (r->ev[i].data, data, len));
}

/** The close code in a recorded close frame (server frames: unmasked). */
static unsigned
close_code (const struct ev *e)
{
  const unsigned char *f = (const unsigned char *) e->data;
  ck_assert_uint_ge (e->len, 4);
  ck_assert_uint_eq (f[0], 0x88);
  return ((unsigned) f[2] << 8) | f[3];
}

/* ------------------------------------------------------------ RFC 7692 7.2.3 */

static const uint8_t hello1[] = { 0xc1, 0x07, 0xf2, 0x48, 0xcd,
                                  0xc9, 0xc9, 0x07, 0x00 };
static const uint8_t hello2[] = { 0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00 };
static const uint8_t hello_stored[] = { 0xc1, 0x0b, 0x00, 0x05, 0x00,
                                        0xfa, 0xff, 0x48, 0x65, 0x6c,
                                        0x6c, 0x6f, 0x00 };
static const uint8_t hello_frag[] = { 0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80,
                                      0x04, 0xc9, 0xc9, 0x07, 0x00 };

START_TEST (test_rfc_vectors_decode)
{
  /* Server frames, decoded by a client stream. */
  struct run r;
  uint8_t two[sizeof (hello1) + sizeof (hello2)];

  decode_every_split (CLIENT, 0, "permessage-deflate", hello1, sizeof (hello1),
                      &r);
  ck_assert_uint_eq (r.n, 1);
  expect_ev (&r, 0, ST_TEXT, "Hello", 5);
  run_free (&r);

  memcpy (two, hello1, sizeof (hello1));
  memcpy (two + sizeof (hello1), hello2, sizeof (hello2));
  decode_every_split (CLIENT, 0, "permessage-deflate", two, sizeof (two), &r);
  ck_assert_uint_eq (r.n, 2);
  expect_ev (&r, 0, ST_TEXT, "Hello", 5);
  expect_ev (&r, 1, ST_TEXT, "Hello", 5);
  run_free (&r);

  decode_every_split (CLIENT, 0, "permessage-deflate", hello_stored,
                      sizeof (hello_stored), &r);
  ck_assert_uint_eq (r.n, 1);
  expect_ev (&r, 0, ST_TEXT, "Hello", 5);
  run_free (&r);

  decode_every_split (CLIENT, 0, "permessage-deflate", hello_frag,
                      sizeof (hello_frag), &r);
  ck_assert_uint_eq (r.n, 1);
  expect_ev (&r, 0, ST_TEXT, "Hello", 5);
  run_free (&r);
}
END_TEST

START_TEST (test_rfc_vectors_server_side)
{
  /* The same frames masked, from a client to a server stream. */
  struct run r;
  uint8_t buf[64];
  size_t n;
  const unsigned b0[2] = { 0xc1, 0xc1 };
  const char *p[2] = { (const char *) hello1 + 2, (const char *) hello2 + 2 };
  const size_t len[2] = { 7, 5 };

  n = frames (buf, true, 2, b0, p, len);
  decode_every_split (SERVER, 0, "permessage-deflate", buf, n, &r);
  ck_assert_uint_eq (r.n, 2);
  expect_ev (&r, 0, ST_TEXT, "Hello", 5);
  expect_ev (&r, 1, ST_TEXT, "Hello", 5);
  run_free (&r);
}
END_TEST

START_TEST (test_rfc_fragments_want_fragments)
{
  struct run r;
  decode_every_split (CLIENT | FRAGS, 0, "permessage-deflate", hello_frag,
                      sizeof (hello_frag), &r);
  /* Each fragment delivers what its bytes inflated to. */
  ck_assert_uint_eq (r.n, 2);
  ck_assert_int_eq (r.ev[0].status, MHD_WEBSOCKET_STATUS_TEXT_FIRST_FRAGMENT);
  ck_assert_int_eq (r.ev[1].status, MHD_WEBSOCKET_STATUS_TEXT_LAST_FRAGMENT);
  ck_assert_uint_eq (r.ev[0].len + r.ev[1].len, 5);
  ck_assert (0 == memcmp (r.ev[0].data, "Hello", r.ev[0].len));
  ck_assert (0 == memcmp (r.ev[1].data, "Hello" + r.ev[0].len, r.ev[1].len));
  run_free (&r);
}
END_TEST

START_TEST (test_rfc_vectors_encode)
{
  struct MHD_WebSocketStream *ws;
  char *f;
  size_t flen;
  int step = 0;

  ws = pmd_stream (SERVER, 0, "permessage-deflate");
  ck_assert_int_eq (
    MHD_websocket_encode_text (ws, "Hello", 5, F_NONE, &f, &flen, NULL), ST_OK);
  ck_assert_uint_eq (flen, sizeof (hello1));
  ck_assert (0 == memcmp (f, hello1, flen));
  ck_assert_int_eq (f[flen], '\0');
  MHD_websocket_free (ws, f);
  /* Context takeover: the second "Hello" refers to the first. */
  ck_assert_int_eq (
    MHD_websocket_encode_text (ws, "Hello", 5, F_NONE, &f, &flen, NULL), ST_OK);
  ck_assert_uint_eq (flen, sizeof (hello2));
  ck_assert (0 == memcmp (f, hello2, flen));
  MHD_websocket_free (ws, f);
  tu_stream_end (ws);

  /* server_no_context_takeover: every "Hello" alike. */
  ws = pmd_stream (SERVER, 0, "permessage-deflate; server_no_context_takeover");
  for (step = 0; step < 3; step++)
  {
    ck_assert_int_eq (
      MHD_websocket_encode_text (ws, "Hello", 5, F_NONE, &f, &flen, NULL),
      ST_OK);
    ck_assert_uint_eq (flen, sizeof (hello1));
    ck_assert (0 == memcmp (f, hello1, flen));
    MHD_websocket_free (ws, f);
  }
  /* Binary: the same bytes with opcode 2. */
  ck_assert_int_eq (
    MHD_websocket_encode_binary (ws, "Hello", 5, F_NONE, &f, &flen), ST_OK);
  ck_assert_uint_eq ((unsigned char) f[0], 0xc2);
  ck_assert (0 == memcmp (f + 1, hello1 + 1, sizeof (hello1) - 1));
  MHD_websocket_free (ws, f);
  /* Control frames are never compressed. */
  ck_assert_int_eq (MHD_websocket_encode_ping (ws, "Hello", 5, &f, &flen),
                    ST_OK);
  ck_assert_uint_eq ((unsigned char) f[0], 0x89);
  ck_assert (0 == memcmp (f + 2, "Hello", 5));
  MHD_websocket_free (ws, f);
  tu_stream_end (ws);
}
END_TEST

START_TEST (test_encode_fragments_one_stream)
{
  struct MHD_WebSocketStream *tx;
  uint8_t wire[256];
  size_t n = 0;
  char *f;
  size_t flen;
  int step = 0;
  struct run r;
  const char *parts[3] = { "Hel", "lo, ", "world" };
  int frag[3] = { F_FIRST, F_FOLLOWING, F_LAST };
  int i;

  tx = pmd_stream (SERVER, 0, "permessage-deflate");
  for (i = 0; i < 3; i++)
  {
    ck_assert_int_eq (MHD_websocket_encode_text (tx, parts[i],
                                                 strlen (parts[i]), frag[i], &f,
                                                 &flen, &step),
                      ST_OK);
    /* RSV1 on the first frame only. */
    ck_assert_uint_eq ((unsigned char) f[0] & 0x40, (0 == i) ? 0x40 : 0);
    ck_assert_uint_eq ((unsigned char) f[0] & 0x0f, (0 == i) ? 1 : 0);
    ck_assert_uint_eq ((unsigned char) f[0] & 0x80, (2 == i) ? 0x80 : 0);
    memcpy (wire + n, f, flen);
    n += flen;
    MHD_websocket_free (tx, f);
  }
  tu_stream_end (tx);
  decode_every_split (CLIENT, 0, "permessage-deflate", wire, n, &r);
  ck_assert_uint_eq (r.n, 1);
  expect_ev (&r, 0, ST_TEXT, "Hello, world", 12);
  run_free (&r);
}
END_TEST

START_TEST (test_decode_bfinal_and_zlib_forms)
{
  /* A peer may end its deflate stream (BFINAL) and use any block type:
     produced here by zlib directly, with Z_FINISH and Z_FULL_FLUSH. */
  static const int flushes[2] = { Z_FINISH, Z_FULL_FLUSH };
  char text[600];
  int k;

  for (k = 0; k < (int) sizeof (text); k++)
    text[k] = (char) ('a' + (k * 7 % 13));
  for (k = 0; k < 2; k++)
  {
    z_stream z;
    uint8_t comp[1024];
    uint8_t wire[2048];
    size_t clen;
    size_t n;
    struct run r;
    unsigned b0[2] = { 0xc1, 0xc1 };
    const char *p[2];
    size_t plen[2];

    memset (&z, 0, sizeof (z));
    ck_assert_int_eq (
      deflateInit2 (&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *) text;
    z.avail_in = sizeof (text);
    z.next_out = comp;
    z.avail_out = sizeof (comp);
    ck_assert_int_ge (deflate (&z, flushes[k]), Z_OK);
    clen = sizeof (comp) - z.avail_out;
    deflateEnd (&z);
    if ((Z_FULL_FLUSH == flushes[k]) && (clen >= 4))
      clen -= 4; /* 00 00 ff ff removed, as RFC 7692 7.2.1 */
    /* The message twice: after BFINAL the next starts afresh. */
    p[0] = p[1] = (const char *) comp;
    plen[0] = plen[1] = clen;
    n = frames (wire, false, 2, b0, p, plen);
    decode_every_split (CLIENT, 0, "permessage-deflate", wire, n, &r);
    ck_assert_uint_eq (r.n, 2);
    expect_ev (&r, 0, ST_TEXT, text, sizeof (text));
    expect_ev (&r, 1, ST_TEXT, text, sizeof (text));
    run_free (&r);
  }
}
END_TEST

/* ------------------------------------------------------------ round trips */

/** Fills @a buf with text of a kind: 0 chat JSON, 1 random bytes (as
    text: printable), 2 one repeated letter, 3 UTF-8 with multibyte. */
static void
fill (char *buf, size_t len, int kind, unsigned seed)
{
  size_t i = 0;
  static const char *const json = "{\"type\":\"message\",\"user\":\"alice\","
                                  "\"room\":\"general\",\"text\":\"hi there, "
                                  "how are you doing today?\",\"ts\":1700000";
  static const char *const utf = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac "
                                 "\xf0\x9f\x98\x80 ";
  unsigned x = seed * 2654435761u + 1;
  while (i < len)
  {
    x = x * 1103515245u + 12345u;
    switch (kind)
    {
    case 0:
      buf[i] = json[(i + seed) % strlen (json)];
      i++;
      break;
    case 1:
      buf[i++] = (char) (' ' + (x >> 16) % 95);
      break;
    case 2:
      buf[i++] = 'z';
      break;
    default:
    {
      size_t l = strlen (utf);
      size_t j;
      if (len - i < l)
      {
        buf[i++] = 'x';
        break;
      }
      for (j = 0; j < l; j++)
        buf[i++] = utf[j];
    }
    }
  }
}

/** Encodes @a msg on @a tx (text or binary, in @a pieces fragments) into
    @a wire, retrying MEMORY_ERROR; returns the bytes written. */
static size_t
encode_msg (struct MHD_WebSocketStream *tx, const char *msg, size_t len,
            bool text, unsigned pieces, uint8_t *wire, unsigned *retries)
{
  size_t n = 0;
  size_t done = 0;
  unsigned i;
  int step = 0;

  for (i = 0; i < pieces; i++)
  {
    size_t part = (i + 1 == pieces) ? len - done : len / pieces;
    int frag = (1 == pieces)       ? F_NONE
               : (0 == i)          ? F_FIRST
               : (i + 1 == pieces) ? F_LAST
                                   : F_FOLLOWING;
    char *f = NULL;
    size_t flen = 0;
    int st;
    int saved = step;

    /* A text piece must not cut a character: move the cut back. */
    if (text && (i + 1 < pieces))
      while ((part > 0) && (0x80 == ((unsigned char) msg[done + part] & 0xc0)))
        part--;
    for (;;)
    {
      step = saved;
      st = text ? MHD_websocket_encode_text (tx, msg + done, part, frag, &f,
                                             &flen, &step)
                : MHD_websocket_encode_binary (tx, msg + done, part, frag, &f,
                                               &flen);
      if (ST_MEM != st)
        break;
      ck_assert_ptr_null (f);
      if (++*retries > 3)
        tu_alloc_fail_at = -1;
      ck_assert_uint_lt (*retries, 1000);
    }
    ck_assert_int_eq (st, ST_OK);
    memcpy (wire + n, f, flen);
    n += flen;
    MHD_websocket_free (tx, f);
    done += part;
  }
  return n;
}

struct combo
{
  /** The offer as a client would send it. */
  char offer[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
  char answer[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
};

/**
 * Messages of every kind and several sizes, both ways, between a server
 * and a client stream that agreed @a answer; each direction decoded in
 * one go, in odd pieces and (for the small ones) byte by byte.
 */
static void
exchange (const char *answer, bool idle_empty, int level, int max_bits,
          bool big)
{
  static const size_t sizes[] = { 0, 1, 5, 127, 300, 4096, 70000 };
  size_t nsizes = big ? 7 : 6;
  struct MHD_WebSocketStream *srv;
  struct MHD_WebSocketStream *cli;
  size_t si;
  int kind;
  char *msg = malloc (70000);
  uint8_t *wire = malloc (200000);
  unsigned retries = 0;
  long idle_live;

  ck_assert_ptr_nonnull (msg);
  ck_assert_ptr_nonnull (wire);
  srv = tu_stream (SERVER, 0);
  cli = tu_stream (CLIENT, 0);
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (srv, answer, level, max_bits, 0),
    ST_OK);
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (cli, answer, level, max_bits, 0),
    ST_OK);
  idle_live = tu_alloc_live;
  for (si = 0; si < nsizes; si++)
    for (kind = 0; kind < 4; kind++)
    {
      unsigned pieces;
      for (pieces = 1; pieces <= 3; pieces += 2)
      {
        int dir;
        for (dir = 0; dir < 2; dir++)
        {
          struct MHD_WebSocketStream *tx = dir ? cli : srv;
          struct MHD_WebSocketStream *rx = dir ? srv : cli;
          bool text = 1 != kind;
          size_t len = sizes[si];
          size_t n;
          struct run r;

          fill (msg, len, kind, (unsigned) (si * 8 + kind));
          n = encode_msg (tx, msg, len, text, pieces, wire, &retries);
          memset (&r, 0, sizeof (r));
          feed (rx, wire, n, (len < 400) ? 1 : 977, (len < 400) ? 1 : 977, &r);
          ck_assert_msg (1 == r.n, "%s: size %u kind %d: %u events", answer,
                         (unsigned) len, kind, (unsigned) r.n);
          expect_ev (&r, 0, text ? ST_TEXT : ST_BINARY, msg, len);
          run_free (&r);
          /* Between messages no zlib state: at most a history buffer
             per side and stream, none without context takeover. */
          ck_assert_msg (tu_alloc_live <= idle_live + (idle_empty ? 0 : 4),
                         "%s: %ld allocations held between messages", answer,
                         tu_alloc_live - idle_live);
        }
      }
    }
  MHD_websocket_stream_free (srv);
  tu_stream_end (cli);
  free (msg);
  free (wire);
}

/** Every offer a client can make, answered by a server with default
    settings and with each flag, and used both ways. */
START_TEST (test_every_parameter_combination)
{
  int flags = _i & 3;
  int smwb_i = (_i >> 2) % 9; /* 0: absent, else 7 + i */
  int cmwb_i = (_i >> 2) / 9; /* 0: valueless, else 7 + i */
  int server_flags;
  char offer[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
  char answer[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];

  ck_assert_int_eq (MHD_websocket_deflate_offer (flags, smwb_i ? 7 + smwb_i : 0,
                                                 cmwb_i ? 7 + cmwb_i : 0, offer,
                                                 sizeof (offer)),
                    ST_OK);
  for (server_flags = 0; server_flags < 4; server_flags++)
  {
    bool both_reset;
    ck_assert_int_eq (MHD_websocket_deflate_negotiate (
                        offer, server_flags, 0, 0, answer, sizeof (answer)),
                      ST_OK);
    ck_assert_int_eq (MHD_websocket_deflate_check_answer (offer, answer),
                      ST_OK);
    both_reset = (NULL != strstr (answer, "server_no_context_takeover"))
                 && (NULL != strstr (answer, "client_no_context_takeover"));
    /* The server grants what was asked. */
    if (flags & SNCT)
      ck_assert_ptr_nonnull (strstr (answer, "server_no_context_takeover"));
    if (server_flags & CNCT)
      ck_assert_ptr_nonnull (strstr (answer, "client_no_context_takeover"));
    if (0 == server_flags && 2 == cmwb_i)
      ck_assert_ptr_nonnull (strstr (answer, "client_max_window_bits=9"));
    exchange (answer, both_reset, -1, 0, false);
  }
}
END_TEST

START_TEST (test_levels_and_windows)
{
  static const char *const answers[] = {
    "permessage-deflate",
    "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
    "permessage-deflate; server_no_context_takeover; "
    "client_no_context_takeover; server_max_window_bits=15; "
    "client_max_window_bits=15"
  };
  static const int levels[] = { 0, 1, 9 };
  static const int bits[] = { 9, 15 };
  size_t a;
  size_t l;
  size_t b;

  for (a = 0; a < 3; a++)
    for (l = 0; l < 3; l++)
      for (b = 0; b < 2; b++)
        exchange (answers[a], 2 == a, levels[l], bits[b], true);
}
END_TEST

START_TEST (test_min_size_sends_plain)
{
  struct MHD_WebSocketStream *ws = tu_stream (SERVER, 0);
  char *f;
  size_t flen;

  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (ws, "permessage-deflate", -1, 0, 16),
    ST_OK);
  ck_assert_int_eq (
    MHD_websocket_encode_text (ws, "Hello", 5, F_NONE, &f, &flen, NULL), ST_OK);
  ck_assert_uint_eq (flen, 7);
  ck_assert (0 == memcmp (f, "\x81\x05Hello", 7));
  MHD_websocket_free (ws, f);
  /* A plain message does not enter the context: the next compressed
     "Hello" is the first one's bytes. */
  ck_assert_int_eq (MHD_websocket_encode_text (ws, "Hello, Hello, Hello!", 20,
                                               F_NONE, &f, &flen, NULL),
                    ST_OK);
  ck_assert_uint_eq ((unsigned char) f[0], 0xc1);
  MHD_websocket_free (ws, f);
  tu_stream_end (ws);
}
END_TEST

/**
 * Checks the frames of one message that a server stream sent against a
 * plain zlib inflater with the window the server agreed to (@a ref, its
 * context carried over like a conforming peer's): RSV1 on the first
 * frame only, and the payload inflating to @a msg.  Plain messages
 * (RSV1 clear) are compared as they are and do not touch @a ref.
 */
static void
reference_check (z_stream *ref, const uint8_t *wire, size_t n, const char *msg,
                 size_t len, uint8_t *comp, uint8_t *out)
{
  size_t pos = 0;
  size_t clen = 0;
  bool compressed = false;
  bool first = true;
  bool fin = false;

  while (! fin)
  {
    uint64_t plen;
    ck_assert_uint_lt (pos + 2, n + 1);
    fin = 0 != (wire[pos] & 0x80);
    if (first)
      compressed = 0 != (wire[pos] & 0x40);
    else
      ck_assert_uint_eq (wire[pos] & 0x70, 0); /* RSV1 on the first only */
    first = false;
    ck_assert_uint_eq (wire[pos + 1] & 0x80, 0); /* a server never masks */
    plen = wire[pos + 1] & 0x7f;
    pos += 2;
    if (126 == plen)
    {
      plen = ((uint64_t) wire[pos] << 8) | wire[pos + 1];
      pos += 2;
    }
    else if (127 == plen)
    {
      int i;
      plen = 0;
      for (i = 0; i < 8; i++)
        plen = (plen << 8) | wire[pos + i];
      pos += 8;
    }
    ck_assert_uint_le (pos + plen, n);
    memcpy (comp + clen, wire + pos, (size_t) plen);
    clen += (size_t) plen;
    pos += (size_t) plen;
  }
  ck_assert_uint_eq (pos, n);
  if (! compressed)
  {
    ck_assert_uint_eq (clen, len);
    ck_assert (0 == memcmp (comp, msg, len));
    return;
  }
  memcpy (comp + clen, "\x00\x00\xff\xff", 4);
  ref->next_in = comp;
  ref->avail_in = (uInt) (clen + 4);
  ref->next_out = out;
  ref->avail_out = (uInt) (len + 1);
  ck_assert_int_eq (inflate (ref, Z_SYNC_FLUSH), Z_OK);
  ck_assert_uint_eq (ref->avail_in, 0);
  ck_assert_uint_eq (len + 1 - ref->avail_out, len);
  ck_assert (0 == memcmp (out, msg, len));
}

/**
 * The sending half against zlib as the peer, with the exact window the
 * peer granted (an 8-bit one included, so a reference beyond it would
 * fail), context takeover over hundreds of messages of mixed sizes
 * (the history wraps around many times), fragments, messages below
 * min_size sent plain, and allocations failing along the way.
 */
START_TEST (test_encoder_against_zlib)
{
  static const int bits[] = { 8, 9, 10, 12, 15 };
  static const int levels[] = { -1, 1, 6 };
  int w = bits[_i % 5];
  int level = levels[_i / 5];
  char answer[96];
  char *msg = malloc (40000);
  uint8_t *wire = malloc (50000);
  uint8_t *comp = malloc (50000);
  uint8_t *out = malloc (40001);
  struct MHD_WebSocketStream *srv = tu_stream (SERVER, 0);
  z_stream ref;
  unsigned x = 7u + (unsigned) _i;
  unsigned retries = 0;
  int k;

  ck_assert_ptr_nonnull (msg);
  ck_assert_ptr_nonnull (wire);
  ck_assert_ptr_nonnull (comp);
  ck_assert_ptr_nonnull (out);
  snprintf (answer, sizeof (answer),
            "permessage-deflate; server_max_window_bits=%d", w);
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (srv, answer, level, 0, 20), ST_OK);
  memset (&ref, 0, sizeof (ref));
  ck_assert_int_eq (inflateInit2 (&ref, -w), Z_OK);
  for (k = 0; k < 400; k++)
  {
    size_t len;
    size_t n;
    int kind;

    x = x * 1103515245u + 12345u;
    len = (0 == (x >> 8) % 25) ? 5000 + (x >> 12) % 35000 : (x >> 12) % 2000;
    kind = (int) ((x >> 20) % 4);
    fill (msg, len, kind, (unsigned) k);
    if (0 == k % 7)
      tu_alloc_fail_at = tu_alloc_calls + (long) ((x >> 4) % 9);
    n = encode_msg (srv, msg, len, 1 != kind, 1 + (unsigned) (k % 3), wire,
                    &retries);
    tu_alloc_fail_at = -1;
    reference_check (&ref, wire, n, msg, len, comp, out);
  }
  ck_assert_uint_gt (retries, 0); /* the failures did happen */
  (void) inflateEnd (&ref);
  tu_stream_end (srv);
  free (msg);
  free (wire);
  free (comp);
  free (out);
}
END_TEST

/* ------------------------------------------------------------ splits */

START_TEST (test_every_split_of_compressed_messages)
{
  /* Two compressed messages (context taken over), a ping between the
     fragments of a third, masked: every split gives the same events. */
  struct MHD_WebSocketStream *tx = tu_stream (CLIENT, 0);
  uint8_t wire[2048];
  size_t n = 0;
  char msg[200];
  char *f;
  size_t flen;
  int step = 0;
  struct run r;
  const char *agreed = _i ? "permessage-deflate; client_no_context_takeover"
                          : "permessage-deflate";

  ck_assert_int_eq (MHD_websocket_stream_enable_deflate (tx, agreed, -1, 0, 0),
                    ST_OK);
  fill (msg, sizeof (msg), 3, 1);
  n += encode_msg (tx, msg, 100, true, 1, wire + n, &(unsigned){ 0 });
  n += encode_msg (tx, msg, 150, false, 1, wire + n, &(unsigned){ 0 });
  ck_assert_int_eq (
    MHD_websocket_encode_text (tx, msg, 50, F_FIRST, &f, &flen, &step), ST_OK);
  memcpy (wire + n, f, flen);
  n += flen;
  MHD_websocket_free (tx, f);
  ck_assert_int_eq (MHD_websocket_encode_ping (tx, "p", 1, &f, &flen), ST_OK);
  memcpy (wire + n, f, flen);
  n += flen;
  MHD_websocket_free (tx, f);
  ck_assert_int_eq (
    MHD_websocket_encode_text (tx, msg + 50, 50, F_LAST, &f, &flen, &step),
    ST_OK);
  memcpy (wire + n, f, flen);
  n += flen;
  MHD_websocket_free (tx, f);
  tu_stream_end (tx);

  decode_every_split (SERVER, 0, agreed, wire, n, &r);
  ck_assert_uint_eq (r.n, 4);
  expect_ev (&r, 0, ST_TEXT, msg, 100);
  expect_ev (&r, 1, ST_BINARY, msg, 150);
  expect_ev (&r, 2, MHD_WEBSOCKET_STATUS_PING_FRAME, "p", 1);
  expect_ev (&r, 3, ST_TEXT, msg, 100);
  run_free (&r);
}
END_TEST

/* ------------------------------------------------------------ memory errors */

/**
 * The whole life of a compressed pair, with the allocation number @a fail
 * failing (once, or from then on when @a sticky): enable, encode and
 * decode both ways; every MEMORY_ERROR is retried (once: sticky failures
 * are lifted after a few retries).  Whatever failed, the messages arrive
 * intact and nothing leaks.
 */
static long
lifecycle (long fail, bool sticky, const char *agreed)
{
  struct MHD_WebSocketStream *srv = tu_stream (SERVER | FRAGS, 0);
  struct MHD_WebSocketStream *cli = tu_stream (CLIENT, 1 << 20);
  char msg[9000];
  uint8_t wire[20000];
  unsigned retries = 0;
  int k;
  long calls;

  tu_alloc_reset ();
  tu_alloc_fail_at = fail;
  tu_alloc_fail_sticky = sticky;
  while (ST_MEM == MHD_websocket_stream_enable_deflate (srv, agreed, -1, 0, 0))
    tu_alloc_fail_at = -1;
  while (ST_MEM == MHD_websocket_stream_enable_deflate (cli, agreed, -1, 0, 0))
    tu_alloc_fail_at = -1;
  for (k = 0; k < 4; k++)
  {
    int dir;
    for (dir = 0; dir < 2; dir++)
    {
      struct MHD_WebSocketStream *tx = dir ? cli : srv;
      struct MHD_WebSocketStream *rx = dir ? srv : cli;
      size_t len = (k & 1) ? 9000 : 40;
      size_t n;
      struct run r;
      size_t i;
      size_t got = 0;

      fill (msg, len, k & 2 ? 0 : 3, (unsigned) k);
      n = encode_msg (tx, msg, len, true, (k == 3) ? 3 : 1, wire, &retries);
      if (retries > 3)
        tu_alloc_fail_at = -1; /* lift a sticky failure */
      memset (&r, 0, sizeof (r));
      feed (rx, wire, n, 0, 1000, &r);
      if (r.retries > 3)
        tu_alloc_fail_at = -1;
      /* With fragments wanted, the pieces add up to the message. */
      ck_assert_uint_ge (r.n, 1);
      for (i = 0; i < r.n; i++)
      {
        ck_assert_int_gt (r.ev[i].status, 0);
        ck_assert (0 == memcmp (r.ev[i].data, msg + got, r.ev[i].len));
        got += r.ev[i].len;
      }
      ck_assert_uint_eq (got, len);
      run_free (&r);
    }
  }
  calls = tu_alloc_calls;
  ck_assert_int_eq (MHD_websocket_stream_free (srv), ST_OK);
  ck_assert_int_eq (MHD_websocket_stream_free (cli), ST_OK);
  ck_assert_int_eq (tu_alloc_live, 0);
  tu_alloc_reset ();
  return calls;
}

START_TEST (test_memory_error_at_every_allocation)
{
  /* Context takeover with windows that the messages overflow (the
     history wraps), with the default windows, and without. */
  static const char *const agreed[] = {
    "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
    "permessage-deflate",
    "permessage-deflate; server_no_context_takeover; "
    "client_no_context_takeover"
  };
  int a;
  for (a = 0; a < 3; a++)
  {
    long total = lifecycle (-1, false, agreed[a]);
    long i;
    ck_assert_int_gt (total, 10);
    for (i = 0; i < total; i++)
    {
      lifecycle (i, false, agreed[a]);
      lifecycle (i, true, agreed[a]);
    }
  }
}
END_TEST

/* ------------------------------------------------------------ errors */

START_TEST (test_rsv_rules)
{
  struct run r;
  uint8_t buf[64];
  size_t n;

  /* Not enabled: RSV1 stays a protocol error, at the first byte. */
  {
    struct tu_result tr;
    tu_decode (&tr, CLIENT, 0, hello1, sizeof (hello1), 0, 0);
    ck_assert_uint_eq (tr.count, 1);
    ck_assert_int_eq (tr.ev[0].status, ST_PROTO);
    ck_assert_uint_eq (tr.ev[0].offset, 0);
    tu_result_free (&tr);
  }
  /* RSV1 on a continuation frame. */
  {
    const unsigned b0[2] = { 0x41, 0xc0 };
    const char *p[2] = { "\xf2\x48\xcd", "\xc9\xc9\x07\x00" };
    const size_t len[2] = { 3, 4 };
    n = frames (buf, false, 2, b0, p, len);
    decode_every_split (CLIENT, 0, "permessage-deflate", buf, n, &r);
    ck_assert_uint_eq (r.n, 1);
    ck_assert_int_eq (r.ev[0].status, ST_PROTO);
    run_free (&r);
  }
  /* RSV1 on control frames, RSV2 and RSV3 on data. */
  {
    static const unsigned bad[] = { 0xc9, 0xca, 0xc8, 0xa1, 0x91, 0xe1, 0xd1 };
    size_t i;
    for (i = 0; i < sizeof (bad) / sizeof (bad[0]); i++)
    {
      n = tu_frame (buf, bad[i], "ab", 2, NULL);
      decode_every_split (CLIENT | CLOSES, 0, "permessage-deflate", buf, n, &r);
      ck_assert_uint_eq (r.n, 1);
      ck_assert_int_eq (r.ev[0].status, ST_PROTO);
      ck_assert_uint_eq (r.ev[0].len, 8); /* masked close frame 1002 */
      run_free (&r);
    }
  }
  /* Uncompressed messages still pass on an enabled stream. */
  n = tu_frame (buf, 0x81, "plain", 5, NULL);
  decode_every_split (CLIENT, 0, "permessage-deflate", buf, n, &r);
  expect_ev (&r, 0, ST_TEXT, "plain", 5);
  run_free (&r);
}
END_TEST

START_TEST (test_corrupt_data)
{
  static const struct
  {
    const char *data;
    size_t len;
  } bad[] = {
    { "\xff\xff\xff\xff", 4 },     /* reserved block type 3 */
    { "\x00\x05\x00\x00\x00", 5 }, /* stored lengths that disagree */
    { "\xf2\x48\xcd", 3 },         /* cut in a block */
    { "\x02\x00\x00\x00\x00", 5 }, /* distance too far back */
    { "", 0 },                     /* nothing: the tail alone is no block */
  };
  size_t i;

  for (i = 0; i < sizeof (bad) / sizeof (bad[0]); i++)
  {
    uint8_t buf[64];
    struct run r;
    size_t n = tu_frame (buf, 0xc2, bad[i].data, bad[i].len, test_mask);
    decode_every_split (SERVER | CLOSES, 0, "permessage-deflate", buf, n, &r);
    ck_assert_msg (1 == r.n, "case %u", (unsigned) i);
    ck_assert_msg (ST_PROTO == r.ev[0].status, "case %u: %d", (unsigned) i,
                   r.ev[0].status);
    ck_assert_uint_eq (close_code (&r.ev[0]), 1002);
    run_free (&r);
  }
}
END_TEST

/** Compresses @a len bytes of @a byte (in one raw deflate stream ending
    with a sync flush minus its tail) into a fresh malloc'd buffer. */
static uint8_t *
compress_run (int byte, uint64_t len, size_t *out_len)
{
  z_stream z;
  size_t cap = (size_t) (len / 500 + 4096);
  uint8_t *out = malloc (cap);
  static char block[65536];
  uint64_t left = len;

  ck_assert_ptr_nonnull (out);
  memset (block, byte, sizeof (block));
  memset (&z, 0, sizeof (z));
  ck_assert_int_eq (
    deflateInit2 (&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_out = out;
  z.avail_out = (uInt) cap;
  while (left > 0)
  {
    size_t k = (left < sizeof (block)) ? (size_t) left : sizeof (block);
    z.next_in = (Bytef *) block;
    z.avail_in = (uInt) k;
    ck_assert_int_eq (deflate (&z, Z_NO_FLUSH), Z_OK);
    ck_assert_uint_eq (z.avail_in, 0);
    left -= k;
  }
  ck_assert_int_eq (deflate (&z, Z_SYNC_FLUSH), Z_OK);
  *out_len = cap - z.avail_out - 4;
  deflateEnd (&z);
  return out;
}

START_TEST (test_zip_bomb_stops_at_limit)
{
  /* 64 MiB of zeros against a 1 MiB limit: refused with 1009, and no
     buffer ever larger than the limit plus the NUL and one byte. */
  size_t clen;
  uint8_t *comp = compress_run (0, 64u << 20, &clen);
  uint8_t *wire = malloc (clen + 14);
  size_t n;
  struct MHD_WebSocketStream *ws;
  struct run r;
  int flags[2] = { SERVER | CLOSES, SERVER | CLOSES | FRAGS };
  int k;

  ck_assert_ptr_nonnull (wire);
  n = tu_frame (wire, 0xc2, comp, clen, test_mask);
  for (k = 0; k < 2; k++)
  {
    tu_alloc_reset ();
    memset (&r, 0, sizeof (r));
    ws = pmd_stream (flags[k], 1u << 20, "permessage-deflate");
    feed (ws, wire, n, 0, 65536, &r);
    ck_assert_uint_eq (r.n, 1);
    ck_assert_int_eq (r.ev[0].status, ST_MAX);
    ck_assert_uint_eq (close_code (&r.ev[0]), 1009);
    ck_assert_uint_le (tu_alloc_largest, (1u << 20) + 2);
    run_free (&r);
    tu_stream_end (ws);
  }
  /* Exactly the limit passes; one byte more does not. */
  free (comp);
  comp = compress_run ('a', 4096, &clen);
  n = tu_frame (wire, 0xc1, comp, clen, test_mask);
  decode_every_split (SERVER, 4096, "permessage-deflate", wire, n, &r);
  ck_assert_uint_eq (r.n, 1);
  ck_assert_int_eq (r.ev[0].status, ST_TEXT);
  ck_assert_uint_eq (r.ev[0].len, 4096);
  run_free (&r);
  decode_every_split (SERVER, 4095, "permessage-deflate", wire, n, &r);
  ck_assert_uint_eq (r.n, 1);
  ck_assert_int_eq (r.ev[0].status, ST_MAX);
  run_free (&r);
  free (comp);
  free (wire);
}
END_TEST

START_TEST (test_inflated_utf8_fail_fast)
{
  /* Invalid UTF-8 at the start of a large compressed text message is
     reported before the rest of the message arrives. */
  char *text = malloc (100000);
  z_stream z;
  uint8_t *comp = malloc (120000);
  uint8_t *wire = malloc (120100);
  size_t clen;
  size_t n;
  struct MHD_WebSocketStream *ws;
  struct run r;

  fill (text, 100000, 1, 77); /* printable noise: compresses little */
  text[10] = (char) 0xc0;     /* an overlong lead */
  memset (&z, 0, sizeof (z));
  ck_assert_int_eq (
    deflateInit2 (&z, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (Bytef *) text;
  z.avail_in = 100000;
  z.next_out = comp;
  z.avail_out = 120000;
  ck_assert_int_eq (deflate (&z, Z_SYNC_FLUSH), Z_OK);
  clen = 120000 - z.avail_out - 4;
  deflateEnd (&z);
  n = tu_frame (wire, 0xc1, comp, clen, test_mask);
  ck_assert_uint_gt (clen, 40000);
  ws = pmd_stream (SERVER | CLOSES, 0, "permessage-deflate");
  memset (&r, 0, sizeof (r));
  feed (ws, wire, 14 + 8192, 0, 0, &r); /* a first part only */
  ck_assert_uint_eq (r.n, 1);
  ck_assert_int_eq (r.ev[0].status, ST_UTF8);
  ck_assert_uint_eq (close_code (&r.ev[0]), 1007);
  run_free (&r);
  tu_stream_end (ws);
  /* A message that ends inside a character: whole in one frame, and with
     its compressed bytes in a first fragment and an empty last one.  With
     fragments wanted the first fragment goes out and takes the message
     buffer with it, so the empty frame's end needs a new one; when that
     allocation fails the end comes out on a retry with no bytes, which
     must not count a byte back from the call's start. */
  free (comp);
  {
    static const char cut[] = "ab\xe2\x82";
    memset (&z, 0, sizeof (z));
    comp = malloc (64);
    ck_assert_int_eq (
      deflateInit2 (&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *) cut;
    z.avail_in = 4;
    z.next_out = comp;
    z.avail_out = 64;
    ck_assert_int_eq (deflate (&z, Z_SYNC_FLUSH), Z_OK);
    clen = 64 - z.avail_out - 4;
    deflateEnd (&z);
    n = tu_frame (wire, 0xc1, comp, clen, test_mask);
    decode_every_split (SERVER, 0, "permessage-deflate", wire, n, &r);
    ck_assert_uint_eq (r.n, 1);
    ck_assert_int_eq (r.ev[0].status, ST_UTF8);
    run_free (&r);
    n = tu_frame (wire, 0x41, comp, clen, test_mask);
    n += tu_frame (wire + n, 0x80, "", 0, test_mask);
    decode_every_split (SERVER | FRAGS, 0, "permessage-deflate", wire, n, &r);
    ck_assert_uint_eq (r.n, 2);
    expect_ev (&r, 0, MHD_WEBSOCKET_STATUS_TEXT_FIRST_FRAGMENT, "ab", 2);
    ck_assert_int_eq (r.ev[1].status, ST_UTF8);
    run_free (&r);
  }
  free (text);
  free (comp);
  free (wire);
}
END_TEST

START_TEST (test_want_fragments_utf8_held)
{
  /* A compressed text message in fragments, cut inside characters:
     each fragment handed out is whole characters, together the text. */
  struct MHD_WebSocketStream *tx;
  char msg[3000];
  uint8_t wire[8000];
  size_t n = 0;
  size_t off;
  int step = 0;
  struct run r;
  size_t i;
  size_t got = 0;

  fill (msg, sizeof (msg), 3, 5);
  (void) step;
  n = 0;
  tx = tu_stream (CLIENT, 0);
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (tx, "permessage-deflate", 1, 0, 0),
    ST_OK);
  for (off = 0; off < sizeof (msg); off += 333)
  {
    size_t part = (off + 333 > sizeof (msg)) ? sizeof (msg) - off : 333;
    char *f;
    size_t flen;
    ck_assert_int_eq (
      MHD_websocket_encode_binary (tx, msg + off, part,
                                   (0 == off)                     ? F_FIRST
                                   : (off + part == sizeof (msg)) ? F_LAST
                                                                  : F_FOLLOWING,
                                   &f, &flen),
      ST_OK);
    if (0 == off)
      f[0] = (char) ((f[0] & ~0x0f) | 0x01);
    memcpy (wire + n, f, flen);
    n += flen;
    MHD_websocket_free (tx, f);
  }
  tu_stream_end (tx);
  decode_every_split (SERVER | FRAGS, 0, "permessage-deflate", wire, n, &r);
  ck_assert_uint_ge (r.n, 2);
  for (i = 0; i < r.n; i++)
  {
    int st8 = 0;
    ck_assert_int_eq (r.ev[i].status & 0x0f, 1);
    /* every piece is valid UTF-8 on its own */
    {
      struct MHD_WebSocketStream *v = tu_stream (SERVER, 0);
      char *f;
      size_t flen;
      ck_assert_int_eq (MHD_websocket_encode_text (v, r.ev[i].data, r.ev[i].len,
                                                   F_NONE, &f, &flen, &st8),
                        ST_OK);
      MHD_websocket_free (v, f);
      tu_stream_end (v);
    }
    ck_assert (0 == memcmp (r.ev[i].data, msg + got, r.ev[i].len));
    got += r.ev[i].len;
  }
  ck_assert_uint_eq (got, sizeof (msg));
  run_free (&r);
}
END_TEST

/* ------------------------------------------------------------ window 8 */

START_TEST (test_window_bits_8)
{
  /* Agreed 8: this side compresses with zlib's 9 (which never reaches
     back more than 250 bytes), and a zlib inflater with a 256-byte
     window reads it; what a peer's zlib makes of 8 (9) inflates here. */
  const char *agreed = "permessage-deflate; server_max_window_bits=8; "
                       "client_max_window_bits=8";
  struct MHD_WebSocketStream *tx = pmd_stream (SERVER, 0, agreed);
  char msg[20000];
  char back[20000];
  int round;

  for (round = 0; round < 3; round++)
  {
    char *f;
    size_t flen;
    z_stream z;
    size_t hs;
    uint8_t in[30000];
    int ret;

    fill (msg, sizeof (msg), round, (unsigned) round);
    ck_assert_int_eq (
      MHD_websocket_encode_binary (tx, msg, sizeof (msg), F_NONE, &f, &flen),
      ST_OK);
    ck_assert_uint_eq ((unsigned char) f[0], 0xc2);
    hs = (127 == (unsigned char) f[1])   ? 10
         : (126 == (unsigned char) f[1]) ? 4
                                         : 2;
    memcpy (in, f + hs, flen - hs);
    memcpy (in + flen - hs, "\x00\x00\xff\xff", 4);
    memset (&z, 0, sizeof (z));
    ck_assert_int_eq (inflateInit2 (&z, -8), Z_OK);
    z.next_in = in;
    z.avail_in = (uInt) (flen - hs + 4);
    z.next_out = (Bytef *) back;
    z.avail_out = sizeof (back);
    ret = inflate (&z, Z_SYNC_FLUSH);
    ck_assert_msg ((Z_OK == ret) || (Z_BUF_ERROR == ret), "inflate: %d %s", ret,
                   z.msg ? z.msg : "");
    ck_assert_uint_eq (z.avail_out, 0);
    ck_assert (0 == memcmp (back, msg, sizeof (msg)));
    inflateEnd (&z);
    MHD_websocket_free (tx, f);
    (void) round;
  }
  tu_stream_end (tx);
  /* Only one window per round above: context takeover across rounds is
     exercised by the exchange tests with the same answer. */
  exchange (agreed, false, 9, 0, true);
}
END_TEST

/* ------------------------------------------------------------ negotiation */

struct neg_case
{
  const char *offer;
  int flags;
  int sbits;
  int cbits;
  int status;
  const char *answer;
};

static const struct neg_case neg_cases[] = {
  { NULL, 0, 0, 0, ST_NOHDR, "" },
  { "", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate", 0, 0, 0, ST_OK, "permessage-deflate" },
  /* What Chromium sends. */
  { "permessage-deflate; client_max_window_bits", 0, 0, 0, ST_OK,
    "permessage-deflate" },
  { "permessage-deflate; client_max_window_bits", 0, 0, 10, ST_OK,
    "permessage-deflate; client_max_window_bits=10" },
  /* Without the client's leave its window cannot be limited. */
  { "permessage-deflate", 0, 0, 10, ST_NOHDR, "" },
  { "permessage-deflate; client_max_window_bits=12", 0, 0, 0, ST_OK,
    "permessage-deflate; client_max_window_bits=12" },
  { "permessage-deflate; client_max_window_bits=12", 0, 0, 10, ST_OK,
    "permessage-deflate; client_max_window_bits=10" },
  { "permessage-deflate; server_max_window_bits=10", 0, 0, 0, ST_OK,
    "permessage-deflate; server_max_window_bits=10" },
  { "permessage-deflate; server_max_window_bits=12", 0, 10, 0, ST_OK,
    "permessage-deflate; server_max_window_bits=10" },
  { "permessage-deflate", 0, 9, 0, ST_OK,
    "permessage-deflate; server_max_window_bits=9" },
  { "permessage-deflate", SNCT | CNCT, 0, 0, ST_OK,
    "permessage-deflate; server_no_context_takeover; "
    "client_no_context_takeover" },
  { "permessage-deflate; server_no_context_takeover; "
    "client_no_context_takeover; server_max_window_bits=8; "
    "client_max_window_bits=8",
    0, 0, 0, ST_OK,
    "permessage-deflate; server_no_context_takeover; "
    "client_no_context_takeover; server_max_window_bits=8; "
    "client_max_window_bits=8" },
  /* Unknown extensions are skipped, offers taken in order. */
  { "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=11", 0,
    0, 0, ST_OK, "permessage-deflate; server_max_window_bits=11" },
  { "foo; bar=\"baz, qux\"; x, permessage-deflate", 0, 0, 0, ST_OK,
    "permessage-deflate" },
  { "permessage-deflate; server_max_window_bits=16, permessage-deflate; "
    "server_no_context_takeover",
    0, 0, 0, ST_OK, "permessage-deflate; server_no_context_takeover" },
  { "permessage-deflate; client_max_window_bits=10, permessage-deflate", 0, 0,
    0, ST_OK, "permessage-deflate; client_max_window_bits=10" },
  /* Offers with bad parameters are declined. */
  { "permessage-deflate; server_max_window_bits", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; server_max_window_bits=08", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; server_max_window_bits=7", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; client_max_window_bits=16", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; client_max_window_bits=1a", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; client_max_window_bits=+9", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; server_no_context_takeover=1", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; server_no_context_takeover; "
    "server_no_context_takeover",
    0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; client_max_window_bits; client_max_window_bits=9", 0,
    0, 0, ST_NOHDR, "" },
  { "permessage-deflate; foo", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; foo=1, permessage-deflate", 0, 0, 0, ST_OK,
    "permessage-deflate" },
  /* Quoted values unescape to a token. */
  { "permessage-deflate; client_max_window_bits=\"10\"", 0, 0, 0, ST_OK,
    "permessage-deflate; client_max_window_bits=10" },
  { "permessage-deflate; client_max_window_bits=\"1\\0\"", 0, 0, 0, ST_OK,
    "permessage-deflate; client_max_window_bits=10" },
  { "permessage-deflate; client_max_window_bits=\"1 0\"", 0, 0, 0, ST_NOHDR,
    "" },
  { "permessage-deflate; client_max_window_bits=\"\"", 0, 0, 0, ST_NOHDR, "" },
  /* Case, white space and empty list elements. */
  { " , PerMessage-Deflate ;\tServer_No_Context_Takeover ,, ", 0, 0, 0, ST_OK,
    "permessage-deflate; server_no_context_takeover" },
  { "permessage-deflate; client_max_window_bits = 9", 0, 0, 0, ST_OK,
    "permessage-deflate; client_max_window_bits=9" },
  /* Malformed values: every offer declined. */
  { "permessage-deflate; client_max_window_bits=\"10", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate;", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate x", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; a=b c", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; a=", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate, \x01", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate\r\n", 0, 0, 0, ST_NOHDR, "" },
  { "=permessage-deflate", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate; a=\"\\\x01\"", 0, 0, 0, ST_NOHDR, "" },
  { "\"permessage-deflate\"", 0, 0, 0, ST_NOHDR, "" },
  { "permessage-deflate-x", 0, 0, 0, ST_NOHDR, "" },
};

START_TEST (test_negotiate_table)
{
  const struct neg_case *c = &neg_cases[_i];
  char answer[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];

  memset (answer, 'X', sizeof (answer));
  ck_assert_msg (c->status
                   == MHD_websocket_deflate_negotiate (c->offer, c->flags,
                                                       c->sbits, c->cbits,
                                                       answer, sizeof (answer)),
                 "offer [%s]", c->offer ? c->offer : "(null)");
  ck_assert_str_eq (answer, c->answer);
  /* Every answer given is one the client accepts and a stream takes. */
  if (ST_OK == c->status)
  {
    struct MHD_WebSocketStream *ws = tu_stream (SERVER, 0);
    ck_assert_int_eq (MHD_websocket_deflate_check_answer (c->offer, answer),
                      ST_OK);
    ck_assert_int_eq (
      MHD_websocket_stream_enable_deflate (ws, answer, -1, 0, 0), ST_OK);
    tu_stream_end (ws);
  }
}
END_TEST

START_TEST (test_negotiate_parameters)
{
  char a[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
  const char *all = "permessage-deflate; server_no_context_takeover; "
                    "client_no_context_takeover; server_max_window_bits=9; "
                    "client_max_window_bits=9";

  ck_assert_int_eq (
    MHD_websocket_deflate_negotiate ("permessage-deflate", 0, 0, 0, NULL, 100),
    ST_PARAM);
  ck_assert_int_eq (
    MHD_websocket_deflate_negotiate ("permessage-deflate", 0, 0, 0, a, 0),
    ST_PARAM);
  ck_assert_int_eq (
    MHD_websocket_deflate_negotiate ("permessage-deflate", 4, 0, 0, a, 100),
    ST_PARAM);
  ck_assert_int_eq (
    MHD_websocket_deflate_negotiate ("permessage-deflate", 0, 7, 0, a, 100),
    ST_PARAM);
  ck_assert_int_eq (
    MHD_websocket_deflate_negotiate ("permessage-deflate", 0, 0, 16, a, 100),
    ST_PARAM);
  ck_assert_int_eq (
    MHD_websocket_deflate_negotiate ("permessage-deflate", 0, -1, 0, a, 100),
    ST_PARAM);
  /* Too small a buffer: nothing but an empty string. */
  ck_assert_int_eq (MHD_websocket_deflate_negotiate (all, 0, 0, 0, a, 40),
                    ST_PARAM);
  ck_assert_str_eq (a, "");
  ck_assert_int_eq (
    MHD_websocket_deflate_negotiate (all, 0, 0, 0, a, strlen (all) + 1), ST_OK);
  ck_assert_str_eq (a, all);
  ck_assert_int_eq (
    MHD_websocket_deflate_negotiate (all, 0, 0, 0, a, strlen (all)), ST_PARAM);
  /* The longest offer fits the documented size. */
  ck_assert_int_eq (
    MHD_websocket_deflate_offer (SNCT | CNCT, 15, 15, a,
                                 MHD_WEBSOCKET_DEFLATE_HEADER_SIZE),
    ST_OK);
  ck_assert_str_eq (a, "permessage-deflate; server_no_context_takeover; "
                       "client_no_context_takeover; server_max_window_bits=15; "
                       "client_max_window_bits=15");
  ck_assert_int_eq (MHD_websocket_deflate_offer (0, 0, 0, a, sizeof (a)),
                    ST_OK);
  ck_assert_str_eq (a, "permessage-deflate; client_max_window_bits");
  ck_assert_int_eq (MHD_websocket_deflate_offer (0, 0, 0, NULL, 100), ST_PARAM);
  ck_assert_int_eq (MHD_websocket_deflate_offer (0, 0, 0, a, 10), ST_PARAM);
  ck_assert_str_eq (a, "");
  ck_assert_int_eq (MHD_websocket_deflate_offer (8, 0, 0, a, 100), ST_PARAM);
  ck_assert_int_eq (MHD_websocket_deflate_offer (0, 7, 0, a, 100), ST_PARAM);
  ck_assert_int_eq (MHD_websocket_deflate_offer (0, 0, 16, a, 100), ST_PARAM);
}
END_TEST

struct check_case
{
  const char *offer;
  const char *answer;
  int status;
};

static const struct check_case check_cases[] = {
  { "permessage-deflate; client_max_window_bits", NULL, ST_NOHDR },
  { "permessage-deflate; client_max_window_bits", "", ST_NOHDR },
  { "permessage-deflate; client_max_window_bits", " \t", ST_NOHDR },
  { "permessage-deflate; client_max_window_bits", "permessage-deflate", ST_OK },
  { "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_max_window_bits=10", ST_OK },
  { "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_max_window_bits", ST_PROTO },
  /* The server may limit its own window unasked (RFC 7692 7.1.2.1). */
  { "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=10", ST_OK },
  { "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_no_context_takeover", ST_OK },
  { "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_no_context_takeover", ST_OK },
  { "permessage-deflate; client_max_window_bits", "x-foo", ST_PROTO },
  { "permessage-deflate; client_max_window_bits", "permessage-deflate, x-foo",
    ST_PROTO },
  { "permessage-deflate; client_max_window_bits",
    "permessage-deflate, permessage-deflate", ST_PROTO },
  { "permessage-deflate; client_max_window_bits", "permessage-deflate; foo",
    ST_PROTO },
  { "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=7", ST_PROTO },
  { "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_no_context_takeover; "
    "server_no_context_takeover",
    ST_PROTO },
  { "permessage-deflate; client_max_window_bits", "permessage-deflate;",
    ST_PROTO },
  /* Not offered: a limit on the client's window. */
  { "permessage-deflate", "permessage-deflate; client_max_window_bits=10",
    ST_PROTO },
  { "permessage-deflate; client_max_window_bits=10",
    "permessage-deflate; client_max_window_bits=11", ST_PROTO },
  { "permessage-deflate; client_max_window_bits=10",
    "permessage-deflate; client_max_window_bits=9", ST_OK },
  /* Asked for and not granted. */
  { "permessage-deflate; server_max_window_bits=10", "permessage-deflate",
    ST_PROTO },
  { "permessage-deflate; server_max_window_bits=10",
    "permessage-deflate; server_max_window_bits=12", ST_PROTO },
  { "permessage-deflate; server_max_window_bits=10",
    "permessage-deflate; server_max_window_bits=9", ST_OK },
  { "permessage-deflate; server_no_context_takeover", "permessage-deflate",
    ST_PROTO },
  /* With two offers, fitting either is enough. */
  { "permessage-deflate; server_no_context_takeover, permessage-deflate",
    "permessage-deflate", ST_OK },
  /* A bad offer is the caller's mistake. */
  { NULL, "permessage-deflate", ST_PARAM },
  { "x-foo", "permessage-deflate", ST_PARAM },
  { "permessage-deflate;", "permessage-deflate", ST_PARAM },
};

START_TEST (test_check_answer_table)
{
  const struct check_case *c = &check_cases[_i];
  ck_assert_msg (c->status
                   == MHD_websocket_deflate_check_answer (c->offer, c->answer),
                 "offer [%s] answer [%s]", c->offer ? c->offer : "(null)",
                 c->answer ? c->answer : "(null)");
}
END_TEST

START_TEST (test_enable_parameters)
{
  struct MHD_WebSocketStream *ws = tu_stream (SERVER, 0);
  size_t rd;
  char *p;
  size_t plen;

  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (NULL, "permessage-deflate", -1, 0, 0),
    ST_PARAM);
  ck_assert_int_eq (MHD_websocket_stream_enable_deflate (ws, NULL, -1, 0, 0),
                    ST_PARAM);
  ck_assert_int_eq (MHD_websocket_stream_enable_deflate (ws, "x-foo", -1, 0, 0),
                    ST_PARAM);
  /* An offer-only form is no agreement. */
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (
      ws, "permessage-deflate; client_max_window_bits", -1, 0, 0),
    ST_PARAM);
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (ws, "permessage-deflate", 10, 0, 0),
    ST_PARAM);
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (ws, "permessage-deflate", -2, 0, 0),
    ST_PARAM);
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (ws, "permessage-deflate", -1, 7, 0),
    ST_PARAM);
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (ws, "permessage-deflate", -1, 16, 0),
    ST_PARAM);
  /* Nothing was enabled by the failures: RSV1 is still an error... */
  ck_assert_int_eq (tu_alloc_live, 0);
  /* ...and after the first byte of a frame, enabling is refused. */
  ck_assert_int_eq (MHD_websocket_decode (ws, "\x81", 1, &rd, &p, &plen),
                    ST_OK);
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (ws, "permessage-deflate", -1, 0, 0),
    ST_PARAM);
  tu_stream_end (ws);
  ws = tu_stream (SERVER, 0);
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (ws, "permessage-deflate", -1, 0, 0),
    ST_OK);
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (ws, "permessage-deflate", -1, 0, 0),
    ST_PARAM);
  tu_stream_end (ws);
}
END_TEST

/* ------------------------------------------------------------ memory */

/* An allocator that counts live bytes, for what a connection holds. */
static size_t mem_live;
static size_t mem_peak;

static void *
mem_malloc (size_t len)
{
  size_t *p = malloc (len + sizeof (size_t) * 2);
  if (NULL == p)
    return NULL;
  p[0] = len;
  mem_live += len;
  if (mem_live > mem_peak)
    mem_peak = mem_live;
  return p + 2;
}

static void
mem_free (void *buf)
{
  size_t *p;
  if (NULL == buf)
    return;
  p = (size_t *) buf - 2;
  mem_live -= p[0];
  free (p);
}

static void *
mem_realloc (void *buf, size_t len)
{
  void *n;
  if (NULL == buf)
    return mem_malloc (len);
  n = mem_malloc (len);
  if (NULL == n)
    return NULL;
  memcpy (n, buf, (((size_t *) buf)[-2] < len) ? ((size_t *) buf)[-2] : len);
  mem_free (buf);
  return n;
}

/**
 * Bytes a server stream holds while idle, after it compressed and
 * decompressed enough chat-like messages to fill both windows (the
 * client's messages compressed at the window the answer allows).
 */
static size_t
idle_bytes (const char *answer, size_t *after_enable)
{
  struct MHD_WebSocketStream *srv = NULL;
  struct MHD_WebSocketStream *cli = tu_stream (CLIENT, 0);
  char msg[600];
  uint8_t wire[2000];
  int k;
  size_t held;

  mem_live = mem_peak = 0;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&srv, SERVER, 0, mem_malloc,
                                                mem_realloc, mem_free, NULL,
                                                NULL),
                    ST_OK);
  ck_assert_int_eq (MHD_websocket_stream_enable_deflate (srv, answer, -1, 0, 0),
                    ST_OK);
  /* The client side compresses with the whole window it may use. */
  ck_assert_int_eq (
    MHD_websocket_stream_enable_deflate (cli, answer, -1, 15, 0), ST_OK);
  *after_enable = mem_live;
  /* About 67 KB each way: more than the largest window. */
  for (k = 0; k < 200; k++)
  {
    size_t len = 100 + 25 * (size_t) (k % 20);
    size_t n;
    struct run r;
    char *f;
    size_t flen;
    unsigned retries = 0;

    fill (msg, len, 0, (unsigned) k);
    n = encode_msg (cli, msg, len, true, 1, wire, &retries);
    memset (&r, 0, sizeof (r));
    feed (srv, wire, n, 0, 0, &r);
    ck_assert_uint_eq (r.n, 1);
    expect_ev (&r, 0, ST_TEXT, msg, len);
    run_free (&r);
    ck_assert_int_eq (
      MHD_websocket_encode_text (srv, msg, len, F_NONE, &f, &flen, NULL),
      ST_OK);
    MHD_websocket_free (srv, f);
  }
  held = mem_live;
  MHD_websocket_stream_free (srv);
  ck_assert_uint_eq (mem_live, 0);
  tu_stream_end (cli);
  return held;
}

START_TEST (test_memory_per_connection)
{
  /* What each answer leaves a server holding between messages: the
     bytes its inflater's window reaches (the client's window), and
     those its deflater's reaches (zlib's: the window less 262). */
  static const struct
  {
    const char *answer;
    size_t window_bytes;
  } cases[] = {
    { "permessage-deflate", 32768 + 32506 },
    { "permessage-deflate; client_max_window_bits=10", 1024 + 32506 },
    { "permessage-deflate; server_max_window_bits=9", 32768 + 250 },
    { "permessage-deflate; server_no_context_takeover", 32768 },
    { "permessage-deflate; client_no_context_takeover", 32506 },
    { "permessage-deflate; server_no_context_takeover; "
      "client_no_context_takeover",
      0 },
  };
  size_t i;

  for (i = 0; i < sizeof (cases) / sizeof (cases[0]); i++)
  {
    size_t base;
    size_t held = idle_bytes (cases[i].answer, &base);
    printf ("memory: %-80s idle %6u bytes (%u after enable), peak %u\n",
            cases[i].answer, (unsigned) held, (unsigned) base,
            (unsigned) mem_peak);
    /* No zlib state between messages: only the windows' bytes. */
    ck_assert_uint_eq (held, base + cases[i].window_bytes);
    /* The default costs at most 64 KiB. */
    ck_assert_uint_le (held, 64u * 1024);
  }
}
END_TEST

/* ------------------------------------------------------------ suite */

static void
setup (void)
{
  tu_alloc_reset ();
}

static Suite *
deflate_suite (void)
{
  Suite *s = suite_create ("deflate");
  TCase *tc;

  tc = tcase_create ("rfc7692");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_rfc_vectors_decode);
  tcase_add_test (tc, test_rfc_vectors_server_side);
  tcase_add_test (tc, test_rfc_fragments_want_fragments);
  tcase_add_test (tc, test_rfc_vectors_encode);
  tcase_add_test (tc, test_encode_fragments_one_stream);
  tcase_add_test (tc, test_decode_bfinal_and_zlib_forms);
  suite_add_tcase (s, tc);

  tc = tcase_create ("roundtrip");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_set_timeout (tc, 600);
  tcase_add_loop_test (tc, test_every_parameter_combination, 0, 4 * 9 * 9);
  tcase_add_test (tc, test_levels_and_windows);
  tcase_add_test (tc, test_min_size_sends_plain);
  tcase_add_loop_test (tc, test_encoder_against_zlib, 0, 15);
  tcase_add_loop_test (tc, test_every_split_of_compressed_messages, 0, 2);
  tcase_add_test (tc, test_window_bits_8);
  suite_add_tcase (s, tc);

  tc = tcase_create ("errors");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_memory_error_at_every_allocation);
  tcase_add_test (tc, test_rsv_rules);
  tcase_add_test (tc, test_corrupt_data);
  tcase_add_test (tc, test_zip_bomb_stops_at_limit);
  tcase_add_test (tc, test_inflated_utf8_fail_fast);
  tcase_add_test (tc, test_want_fragments_utf8_held);
  suite_add_tcase (s, tc);

  tc = tcase_create ("negotiation");
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_loop_test (tc, test_negotiate_table, 0,
                       sizeof (neg_cases) / sizeof (neg_cases[0]));
  tcase_add_test (tc, test_negotiate_parameters);
  tcase_add_loop_test (tc, test_check_answer_table, 0,
                       sizeof (check_cases) / sizeof (check_cases[0]));
  tcase_add_test (tc, test_enable_parameters);
  tcase_add_test (tc, test_memory_per_connection);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  int failed;
  SRunner *sr = srunner_create (deflate_suite ());

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (0 == failed) ? EXIT_SUCCESS : EXIT_FAILURE;
}
