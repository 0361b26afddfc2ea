/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_alloc.c
 * @brief Where the decoder calls the allocator, and for how much
 *        (issue 20; contract section 6, "Allocation points of a
 *        reassembled message").
 *
 * The rule, as the manual states it: a non-empty data frame gets one
 * allocator call at its header (the original's point), before any of
 * its bytes is stored: malloc of exactly the message's bytes so far plus
 * the frame's plus the NUL when the message has no buffer yet, otherwise
 * realloc of at least that (exactly that when the frame ends the
 * message), never above twice the bytes received plus 64 KiB nor above
 * max_payload_size plus the NUL.  Empty data frames cost nothing.  A
 * control frame costs one malloc of its length plus one, when it
 * completes.  With WANT_FRAGMENTS every non-empty frame gets a fresh
 * buffer of exactly its bytes plus the UTF-8 bytes held back from the
 * previous fragment plus the NUL.
 *
 * Each input below is a list of frames; expect() derives from the list
 * alone, by that rule, the calls and the input byte each must happen on,
 * and the inputs are fed whole, split in two at every offset, and one
 * byte per call, with the calls recorded by the stream's callbacks.
 */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIN 0x80u
#define OP_CONT 0x0u
#define OP_TEXT 0x1u
#define OP_BIN 0x2u
#define OP_CLOSE 0x8u
#define OP_PING 0x9u
#define OP_PONG 0xAu

#define SLACK 65536u
#define MAX_CALLS 256
#define MAX_FRAMES 32

/* ------------------------------------------------------------ recorder */

/** One allocator call. */
struct call
{
  char kind; /* 'm' malloc, 'r' realloc */
  size_t size;
  /** The input range [from, to) of the decode call that made it. */
  size_t from;
  size_t to;
};

static struct call calls[MAX_CALLS];
static size_t n_calls;
static long live;
/** Allocation calls fail while this is set, and so does the one with
    index fail_at (-1: none). */
static bool refuse;
static long fail_at = -1;
static size_t cur_from;
static size_t cur_to;

/** Records a call; true when it is to fail. */
static bool
record (char kind, size_t size)
{
  TU_REQUIRE (n_calls < MAX_CALLS);
  calls[n_calls].kind = kind;
  calls[n_calls].size = size;
  calls[n_calls].from = cur_from;
  calls[n_calls].to = cur_to;
  n_calls++;
  return refuse || ((long) n_calls - 1 == fail_at);
}

static void *
rec_malloc (size_t len)
{
  void *p;
  if (record ('m', len))
    return NULL;
  p = malloc (len);
  if (NULL != p)
    live++;
  return p;
}

static void *
rec_realloc (void *buf, size_t len)
{
  if (record ((NULL == buf) ? 'm' : 'r', len))
    return NULL;
  if (NULL == buf)
    live++;
  return realloc (buf, len);
}

static void
rec_free (void *buf)
{
  if (NULL == buf)
    return;
  live--;
  free (buf);
}

static struct MHD_WebSocketStream *
rec_stream (int flags, size_t max)
{
  struct MHD_WebSocketStream *ws = NULL;
  n_calls = 0;
  live = 0;
  refuse = false;
  fail_at = -1;
  ck_assert_int_eq (MHD_websocket_stream_init2 (&ws, flags, max, rec_malloc,
                                                rec_realloc, rec_free, NULL,
                                                NULL),
                    MHD_WEBSOCKET_STATUS_OK);
  return ws;
}

static void
rec_stream_end (struct MHD_WebSocketStream *ws)
{
  ck_assert_int_eq (MHD_websocket_stream_free (ws), MHD_WEBSOCKET_STATUS_OK);
  ck_assert_int_eq (live, 0);
}

/* ------------------------------------------------------------ inputs */

struct frame
{
  unsigned b0;
  const char *payload;
  size_t len;
};

/** A frame list written out as a server receives it (masked). */
struct input
{
  unsigned char *d;
  size_t n;
  /** Per frame: the offset after its header, and after the frame. */
  size_t hdr_end[MAX_FRAMES];
  size_t end[MAX_FRAMES];
};

static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };

static void
build (struct input *in, const struct frame *f, size_t nf)
{
  size_t total = 0;
  size_t i;
  ck_assert_uint_le (nf, MAX_FRAMES);
  for (i = 0; i < nf; i++)
    total += f[i].len + 14;
  in->d = malloc (total);
  ck_assert_ptr_nonnull (in->d);
  in->n = 0;
  for (i = 0; i < nf; i++)
  {
    size_t size =
      tu_frame (in->d + in->n, f[i].b0, f[i].payload, f[i].len, key);
    in->hdr_end[i] = in->n + size - f[i].len;
    in->n += size;
    in->end[i] = in->n;
  }
}

/* ------------------------------------------------------------ the rule */

/** A call the rule requires: its kind, a size range, and the input
    byte whose decoding makes it. */
struct want
{
  char kind;
  size_t lo;
  size_t hi;
  size_t at;
};

/** UTF-8 bytes at the end of @a s that start an unfinished character. */
static size_t
utf8_pending (const unsigned char *s, size_t len)
{
  size_t tail = 0;
  size_t need;
  unsigned lead;
  while ((tail < 3) && (tail < len) && (0x80 == (s[len - 1 - tail] & 0xC0)))
    tail++;
  if (tail == len)
    return 0;
  lead = s[len - 1 - tail];
  if (lead < 0x80)
    return 0;
  need = (lead >= 0xF0) ? 4 : (lead >= 0xE0) ? 3 : 2;
  return (tail + 1 < need) ? tail + 1 : 0;
}

static size_t
expect (const struct frame *f, size_t nf, const struct input *in, int flags,
        size_t max, struct want *w)
{
  bool want_fragments = 0 != (flags & MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS);
  unsigned char msg[4096]; /* a text message so far, for held bytes */
  size_t msg_len = 0;
  size_t total = 0; /* the message's bytes so far (the original's) */
  size_t held = 0;
  size_t n = 0;
  size_t i;

  for (i = 0; i < nf; i++)
  {
    unsigned op = f[i].b0 & 0x0Fu;
    bool fin = 0 != (f[i].b0 & FIN);
    size_t len = f[i].len;

    if (0 != (op & 0x8u))
    {
      if (0 != len)
      {
        w[n].kind = 'm';
        w[n].lo = w[n].hi = len + 1;
        w[n].at = in->end[i] - 1;
        n++;
      }
      continue;
    }
    if (OP_CONT != op)
    {
      total = 0;
      held = 0;
      msg_len = 0;
    }
    if (0 != len)
    {
      size_t sum;
      w[n].at = in->hdr_end[i] - 1;
      if (want_fragments)
      {
        /* A fresh buffer per fragment, the held bytes first. */
        w[n].kind = 'm';
        w[n].lo = w[n].hi = held + len + 1;
      }
      else
      {
        sum = total + len;
        w[n].kind = (0 == total) ? 'm' : 'r';
        w[n].lo = sum + 1;
        if ((0 == total) || fin)
          w[n].hi = sum + 1;
        else
        {
          w[n].hi = 2 * total + SLACK;
          if ((0 != max) && (w[n].hi > max + 1))
            w[n].hi = max + 1;
        }
      }
      n++;
      total += len;
      ck_assert_uint_le (msg_len + len, sizeof (msg));
      memcpy (msg + msg_len, f[i].payload, len);
      msg_len += len;
    }
    if (want_fragments)
      held = utf8_pending (msg, msg_len);
  }
  return n;
}

/* ------------------------------------------------------------ feeding */

/** What the decoder returned, in order, for comparing the splits. */
struct out
{
  int status[MAX_FRAMES];
  char payload[MAX_FRAMES][2048];
  size_t len[MAX_FRAMES];
  size_t count;
};

/**
 * Feeds @a in to a recording stream: bytes [0, split) then the rest,
 * or (@a split 0) all at once, or (@a bytewise) one byte per call.
 */
static void
feed (const struct input *in, int flags, size_t max, size_t split,
      bool bytewise, struct out *o)
{
  struct MHD_WebSocketStream *ws = rec_stream (flags, max);
  size_t off = 0;
  size_t piece_end = (0 != split) ? split : in->n;

  o->count = 0;
  while (off < in->n)
  {
    size_t rd;
    char *payload;
    size_t plen;
    int st;

    if (bytewise)
      piece_end = off + 1;
    else if (off >= piece_end)
      piece_end = in->n;
    cur_from = off;
    cur_to = piece_end;
    st = MHD_websocket_decode (ws, (const char *) in->d + off, piece_end - off,
                               &rd, &payload, &plen);
    ck_assert_int_ge (st, 0);
    ck_assert_uint_le (rd, piece_end - off);
    off += rd;
    if (MHD_WEBSOCKET_STATUS_OK == st)
    {
      ck_assert_uint_eq (off, piece_end);
      continue;
    }
    ck_assert_uint_lt (o->count, MAX_FRAMES);
    ck_assert_uint_le (plen, sizeof (o->payload[0]));
    o->status[o->count] = st;
    o->len[o->count] = plen;
    if (0 != plen)
      memcpy (o->payload[o->count], payload, plen);
    o->count++;
    MHD_websocket_free (ws, payload);
  }
  rec_stream_end (ws);
}

static void
check_calls (const struct want *w, size_t nw, const char *how, size_t split)
{
  size_t i;
  ck_assert_msg (n_calls == nw, "%s %zu: %zu allocator calls, want %zu", how,
                 split, n_calls, nw);
  for (i = 0; i < nw; i++)
  {
    ck_assert_msg (calls[i].kind == w[i].kind,
                   "%s %zu: call %zu is %c, want %c", how, split, i,
                   calls[i].kind, w[i].kind);
    ck_assert_msg ((calls[i].size >= w[i].lo) && (calls[i].size <= w[i].hi),
                   "%s %zu: call %zu asks %zu, want %zu to %zu", how, split, i,
                   calls[i].size, w[i].lo, w[i].hi);
    ck_assert_msg ((calls[i].from <= w[i].at) && (w[i].at < calls[i].to),
                   "%s %zu: call %zu made by the call on [%zu, %zu), want "
                   "the one that decodes byte %zu",
                   how, split, i, calls[i].from, calls[i].to, w[i].at);
  }
}

static void
same_out (const struct out *a, const struct out *b)
{
  size_t i;
  ck_assert_uint_eq (a->count, b->count);
  for (i = 0; i < a->count; i++)
  {
    ck_assert_int_eq (a->status[i], b->status[i]);
    ck_assert_uint_eq (a->len[i], b->len[i]);
    ck_assert_mem_eq (a->payload[i], b->payload[i], a->len[i]);
  }
}

/** Every split of @a f against the rule; the whole-input outputs stay
    in @a whole. */
static void
check_every_split (const struct frame *f, size_t nf, int flags, size_t max,
                   struct out *whole)
{
  struct input in;
  struct want w[MAX_CALLS];
  size_t nw;
  struct out o;
  size_t split;

  build (&in, f, nf);
  nw = expect (f, nf, &in, flags, max, w);
  feed (&in, flags, max, 0, false, whole);
  check_calls (w, nw, "whole", 0);
  for (split = 1; split < in.n; split++)
  {
    feed (&in, flags, max, split, false, &o);
    check_calls (w, nw, "split at", split);
    same_out (whole, &o);
  }
  feed (&in, flags, max, 0, true, &o);
  check_calls (w, nw, "bytewise", 0);
  same_out (whole, &o);
  free (in.d);
}

#define FR(b0, s)                                                              \
  {                                                                            \
    (b0), (s), sizeof (s) - 1                                                  \
  }
#define N(a) (sizeof (a) / sizeof ((a)[0]))
#define S_SERVER MHD_WEBSOCKET_FLAG_SERVER
#define S_FRAGS MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS

/* ------------------------------------------------------------ tests */

START_TEST (test_contract_example_points)
{
  static const struct frame f[] = { FR (OP_TEXT, "Hel"),
                                    FR (FIN | OP_CONT, "lo") };
  struct out o;
  check_every_split (f, N (f), S_SERVER, 0, &o);
  ck_assert_uint_eq (o.count, 1);
  ck_assert_int_eq (o.status[0], MHD_WEBSOCKET_STATUS_TEXT_FRAME);
  ck_assert_uint_eq (o.len[0], 5);
  ck_assert_mem_eq (o.payload[0], "Hello", 5);
}
END_TEST

START_TEST (test_contract_example_failure_and_retry)
{
  /* Contract section 6, word for word: 4 bytes asked on the first
     fragment; with allocation off, the last fragment's realloc fails
     with its header read; fed the rest later, the message completes. */
  static const char first[] = "\x01\x83\x00\x00\x00\x00"
                              "Hel";
  static const char last[] = "\x80\x82\x00\x00\x00\x00"
                             "lo";
  struct MHD_WebSocketStream *ws = rec_stream (S_SERVER, 0);
  size_t rd;
  char *payload;
  size_t plen;

  ck_assert_int_eq (MHD_websocket_decode (ws, first, 9, &rd, &payload, &plen),
                    MHD_WEBSOCKET_STATUS_OK);
  ck_assert_uint_eq (rd, 9);
  ck_assert_uint_eq (n_calls, 1);
  ck_assert_int_eq (calls[0].kind, 'm');
  ck_assert_uint_eq (calls[0].size, 4);

  refuse = true;
  ck_assert_int_eq (MHD_websocket_decode (ws, last, 8, &rd, &payload, &plen),
                    MHD_WEBSOCKET_STATUS_MEMORY_ERROR);
  ck_assert_uint_eq (rd, 6);
  ck_assert_ptr_null (payload);
  ck_assert_uint_eq (plen, 0);
  ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                    MHD_WEBSOCKET_VALIDITY_VALID);
  ck_assert_uint_eq (n_calls, 2);
  ck_assert_int_eq (calls[1].kind, 'r');
  ck_assert_uint_ge (calls[1].size, 6);

  refuse = false;
  ck_assert_int_eq (
    MHD_websocket_decode (ws, last + 6, 2, &rd, &payload, &plen),
    MHD_WEBSOCKET_STATUS_TEXT_FRAME);
  ck_assert_uint_eq (rd, 2);
  ck_assert_uint_eq (plen, 5);
  ck_assert_str_eq (payload, "Hello");
  ck_assert_uint_eq (n_calls, 3);
  ck_assert_int_eq (calls[2].kind, 'r');
  ck_assert_uint_eq (calls[2].size, 6);
  MHD_websocket_free (ws, payload);
  rec_stream_end (ws);
}
END_TEST

START_TEST (test_header_alone_fails_at_header)
{
  /* The last fragment's header arrives without its payload: the realloc
     is made (and fails) in that call, the header counted as read. */
  static const char first[] = "\x01\x83\x00\x00\x00\x00"
                              "Hel";
  static const char last[] = "\x80\x82\x00\x00\x00\x00"
                             "lo";
  struct MHD_WebSocketStream *ws = rec_stream (S_SERVER, 0);
  size_t rd;
  char *payload;
  size_t plen;

  ck_assert_int_eq (MHD_websocket_decode (ws, first, 9, &rd, &payload, &plen),
                    MHD_WEBSOCKET_STATUS_OK);
  refuse = true;
  ck_assert_int_eq (MHD_websocket_decode (ws, last, 6, &rd, &payload, &plen),
                    MHD_WEBSOCKET_STATUS_MEMORY_ERROR);
  ck_assert_uint_eq (rd, 6);
  ck_assert_uint_eq (n_calls, 2);
  /* Nothing to feed: no call, nothing happens. */
  ck_assert_int_eq (
    MHD_websocket_decode (ws, last + 6, 0, &rd, &payload, &plen),
    MHD_WEBSOCKET_STATUS_OK);
  ck_assert_uint_eq (n_calls, 2);
  /* Still refused when the payload comes, and nothing of it is read. */
  ck_assert_int_eq (
    MHD_websocket_decode (ws, last + 6, 1, &rd, &payload, &plen),
    MHD_WEBSOCKET_STATUS_MEMORY_ERROR);
  ck_assert_uint_eq (rd, 0);
  ck_assert_uint_eq (n_calls, 3);
  refuse = false;
  ck_assert_int_eq (
    MHD_websocket_decode (ws, last + 6, 1, &rd, &payload, &plen),
    MHD_WEBSOCKET_STATUS_OK);
  ck_assert_uint_eq (rd, 1);
  ck_assert_uint_eq (n_calls, 4);
  ck_assert_int_eq (
    MHD_websocket_decode (ws, last + 7, 1, &rd, &payload, &plen),
    MHD_WEBSOCKET_STATUS_TEXT_FRAME);
  ck_assert_uint_eq (n_calls, 4);
  ck_assert_str_eq (payload, "Hello");
  MHD_websocket_free (ws, payload);
  rec_stream_end (ws);
}
END_TEST

START_TEST (test_refused_call_is_made_again)
{
  /* After a refused call at a header, the frame's first byte brings the
     call again, even when the buffer (grown ahead) has room for it. */
  static char p[100];
  struct frame f[] = { { OP_BIN, p, 100 },
                       { OP_CONT, p, 10 },
                       { FIN | OP_CONT, p, 20 } };
  struct input in;
  struct MHD_WebSocketStream *ws;
  size_t rd;
  char *payload;
  size_t plen;
  size_t off;
  memset (p, 'q', sizeof (p));
  build (&in, f, N (f));
  ws = rec_stream (S_SERVER, 0);
  ck_assert_int_eq (MHD_websocket_decode (ws, (const char *) in.d, in.end[1],
                                          &rd, &payload, &plen),
                    MHD_WEBSOCKET_STATUS_OK);
  ck_assert_uint_eq (n_calls, 2);
  ck_assert_uint_gt (calls[1].size, 111 + 1); /* room ahead */
  refuse = true;
  ck_assert_int_eq (MHD_websocket_decode (ws, (const char *) in.d + in.end[1],
                                          in.hdr_end[2] - in.end[1], &rd,
                                          &payload, &plen),
                    MHD_WEBSOCKET_STATUS_MEMORY_ERROR);
  ck_assert_uint_eq (rd, in.hdr_end[2] - in.end[1]);
  ck_assert_uint_eq (n_calls, 3);
  refuse = false;
  for (off = in.hdr_end[2]; off < in.end[2] - 1; off++)
  {
    ck_assert_int_eq (MHD_websocket_decode (ws, (const char *) in.d + off, 1,
                                            &rd, &payload, &plen),
                      MHD_WEBSOCKET_STATUS_OK);
    ck_assert_uint_eq (n_calls, 4);
  }
  ck_assert_uint_eq (calls[3].size, 131);
  ck_assert_int_eq (MHD_websocket_decode (ws, (const char *) in.d + off, 1, &rd,
                                          &payload, &plen),
                    MHD_WEBSOCKET_STATUS_BINARY_FRAME);
  ck_assert_uint_eq (plen, 130);
  MHD_websocket_free (ws, payload);
  rec_stream_end (ws);
  free (in.d);
}
END_TEST

START_TEST (test_unfragmented_and_empty)
{
  static char bin[300];
  struct frame f[] = { FR (FIN | OP_TEXT, "hello"),
                       FR (FIN | OP_TEXT, ""),
                       { FIN | OP_BIN, bin, sizeof (bin) },
                       FR (FIN | OP_BIN, "") };
  struct out o;
  size_t i;
  for (i = 0; i < sizeof (bin); i++)
    bin[i] = (char) i;
  check_every_split (f, N (f), S_SERVER, 0, &o);
  ck_assert_uint_eq (o.count, 4);
}
END_TEST

START_TEST (test_empty_fragments_cost_nothing)
{
  /* An empty first fragment allocates nothing; the first bytes then get
     a buffer of exactly their size; empty fragments ask for nothing. */
  static const struct frame f[] = { FR (OP_TEXT, ""), FR (OP_CONT, "abc"),
                                    FR (OP_CONT, ""), FR (OP_CONT, "de"),
                                    FR (FIN | OP_CONT, "") };
  struct out o;
  check_every_split (f, N (f), S_SERVER, 0, &o);
  ck_assert_uint_eq (o.count, 1);
  ck_assert_mem_eq (o.payload[0], "abcde", 5);
}
END_TEST

START_TEST (test_control_frames_between_fragments)
{
  static const struct frame f[] = { FR (OP_BIN, "12345"),
                                    FR (FIN | OP_PING, "p"),
                                    FR (OP_CONT, "678"),
                                    FR (FIN | OP_PONG, ""),
                                    FR (OP_CONT, "9"),
                                    FR (FIN | OP_PING, "ping!"),
                                    FR (FIN | OP_CONT, "0"),
                                    FR (FIN | OP_TEXT, "x"),
                                    FR (FIN | OP_CLOSE, "\x03\xe8"
                                                        "bye") };
  struct out o;
  check_every_split (f, N (f), S_SERVER, 0, &o);
  ck_assert_uint_eq (o.count, 6);
  ck_assert_int_eq (o.status[3], MHD_WEBSOCKET_STATUS_BINARY_FRAME);
  ck_assert_mem_eq (o.payload[3], "1234567890", 10);
}
END_TEST

START_TEST (test_many_fragments_one_call_each)
{
  static const char chunk[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMN";
  struct frame f[24];
  struct out o;
  size_t i;
  for (i = 0; i < N (f); i++)
  {
    f[i].b0 = (0 == i) ? OP_TEXT : OP_CONT;
    if (N (f) - 1 == i)
      f[i].b0 |= FIN;
    f[i].payload = chunk;
    f[i].len = i % 3 == 1 ? 0 : (i % 7) + 1;
  }
  check_every_split (f, N (f), S_SERVER, 0, &o);
  ck_assert_uint_eq (o.count, 1);
}
END_TEST

START_TEST (test_utf8_split_across_fragments)
{
  /* Reassembled, a character cut by a fragment boundary changes
     nothing: the sizes are the bytes so far plus the NUL. */
  static const struct frame f[] = { FR (OP_TEXT, "a\xc3"),
                                    FR (OP_CONT, "\xa9"
                                                 "b\xe2\x82"),
                                    FR (FIN | OP_CONT, "\xac") };
  struct out o;
  check_every_split (f, N (f), S_SERVER, 0, &o);
  ck_assert_uint_eq (o.count, 1);
  ck_assert_uint_eq (o.len[0], 7);
}
END_TEST

START_TEST (test_want_fragments_fresh_buffers)
{
  /* Each fragment's buffer holds the bytes held back from the one
     before: 2 + 1, then 1 + 4 + 1, then 2 + 1 + 1 (the empty fragment
     asks for nothing). */
  static const struct frame f[] = { FR (OP_TEXT, "a\xc3"),
                                    FR (FIN | OP_PING, "hi"),
                                    FR (OP_CONT, "\xa9"
                                                 "b\xe2\x82"),
                                    FR (OP_CONT, ""),
                                    FR (FIN | OP_CONT, "\xac") };
  static const struct frame g[] = { FR (OP_BIN, "abc"), FR (OP_CONT, "d"),
                                    FR (FIN | OP_CONT, "efgh") };
  struct out o;
  check_every_split (f, N (f), S_SERVER | S_FRAGS, 0, &o);
  check_every_split (g, N (g), S_SERVER | S_FRAGS, 0, &o);
  ck_assert_uint_eq (o.count, 3);
}
END_TEST

START_TEST (test_growth_bounded_by_max_payload)
{
  static char big[300];
  struct frame f[] = { { OP_BIN, big, 300 },
                       { OP_CONT, big, 300 },
                       { OP_CONT, big, 300 },
                       { FIN | OP_CONT, big, 100 } };
  struct out o;
  size_t i;
  memset (big, 'z', sizeof (big));
  check_every_split (f, N (f), S_SERVER, 1000, &o);
  ck_assert_uint_eq (o.count, 1);
  ck_assert_uint_eq (o.len[0], 1000);
  for (i = 0; i < n_calls; i++)
    ck_assert_uint_le (calls[i].size, 1001);
}
END_TEST

START_TEST (test_over_limit_asks_nothing)
{
  /* The fragment that makes the message too big is refused at its
     header, before any call for it. */
  static char big[600];
  struct frame f[] = { { OP_BIN, big, 600 }, { FIN | OP_CONT, big, 500 } };
  struct input in;
  struct MHD_WebSocketStream *ws;
  size_t rd;
  char *payload;
  size_t plen;
  build (&in, f, N (f));
  ws = rec_stream (S_SERVER, 1000);
  ck_assert_int_eq (
    MHD_websocket_decode (ws, (const char *) in.d, in.n, &rd, &payload, &plen),
    MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED);
  ck_assert_uint_eq (rd, in.hdr_end[1]);
  ck_assert_uint_eq (n_calls, 1);
  ck_assert_uint_eq (calls[0].size, 601);
  rec_stream_end (ws);
  free (in.d);
}
END_TEST

START_TEST (test_large_frame_waits_for_its_bytes)
{
  /* A first fragment too big to ask for before its bytes come (the
     contract's bound: twice what arrived plus 64 KiB) is allocated as
     they arrive; whole, it gets its exact size; the next fragment still
     costs one call at its header. */
  size_t big = 200000;
  char *p = calloc (1, big);
  struct frame f[2];
  struct input in;
  struct MHD_WebSocketStream *ws;
  size_t rd;
  char *payload;
  size_t plen;
  size_t off;
  ck_assert_ptr_nonnull (p);
  f[0].b0 = OP_BIN;
  f[0].payload = p;
  f[0].len = big;
  f[1].b0 = FIN | OP_CONT;
  f[1].payload = "tail";
  f[1].len = 4;
  build (&in, f, 2);

  ws = rec_stream (S_SERVER, 0);
  ck_assert_int_eq (MHD_websocket_decode (ws, (const char *) in.d,
                                          in.hdr_end[0], &rd, &payload, &plen),
                    MHD_WEBSOCKET_STATUS_OK);
  ck_assert_uint_eq (n_calls, 0);
  for (off = in.hdr_end[0]; off < in.end[0]; off += rd)
  {
    size_t step = (in.end[0] - off < 10000) ? in.end[0] - off : 10000;
    size_t before = n_calls;
    ck_assert_int_eq (MHD_websocket_decode (ws, (const char *) in.d + off, step,
                                            &rd, &payload, &plen),
                      MHD_WEBSOCKET_STATUS_OK);
    if (off == in.hdr_end[0])
      ck_assert_uint_eq (n_calls, 1); /* the first bytes: a call */
    if (n_calls > before)
      ck_assert_uint_le (calls[n_calls - 1].size,
                         2 * (off + step - in.hdr_end[0]) + SLACK);
  }
  {
    size_t before = n_calls;
    ck_assert_int_eq (MHD_websocket_decode (ws, (const char *) in.d + off,
                                            in.hdr_end[1] - off, &rd, &payload,
                                            &plen),
                      MHD_WEBSOCKET_STATUS_OK);
    ck_assert_uint_eq (n_calls, before + 1);
    ck_assert_int_eq (calls[before].kind, 'r');
    ck_assert_uint_eq (calls[before].size, big + 4 + 1);
  }
  ck_assert_int_eq (MHD_websocket_decode (ws,
                                          (const char *) in.d + in.hdr_end[1],
                                          4, &rd, &payload, &plen),
                    MHD_WEBSOCKET_STATUS_BINARY_FRAME);
  ck_assert_uint_eq (plen, big + 4);
  MHD_websocket_free (ws, payload);
  rec_stream_end (ws);

  /* Whole in one call: one malloc, exact. */
  ws = rec_stream (S_SERVER, 0);
  ck_assert_int_eq (MHD_websocket_decode (ws, (const char *) in.d, in.end[0],
                                          &rd, &payload, &plen),
                    MHD_WEBSOCKET_STATUS_OK);
  ck_assert_uint_eq (n_calls, 1);
  ck_assert_int_eq (calls[0].kind, 'm');
  ck_assert_uint_eq (calls[0].size, big + 1);
  rec_stream_end (ws);
  free (in.d);
  free (p);
}
END_TEST

START_TEST (test_every_call_can_fail_and_retry)
{
  /* Failing each call in turn (once): MEMORY_ERROR, the stream stays
     valid, and feeding on from what was read gives the same messages. */
  static const struct frame f[] = {
    FR (OP_TEXT, "Hel"),  FR (FIN | OP_PING, "p"),     FR (OP_CONT, ""),
    FR (OP_CONT, "lo, "), FR (FIN | OP_CONT, "world"), FR (FIN | OP_BIN, "b"),
    FR (OP_BIN, "ab"),    FR (FIN | OP_CONT, "c")
  };
  struct input in;
  struct want w[MAX_CALLS];
  struct out ref;
  size_t nw;
  size_t k;

  build (&in, f, N (f));
  nw = expect (f, N (f), &in, S_SERVER, 0, w);
  feed (&in, S_SERVER, 0, 0, false, &ref);
  for (k = 0; k < nw; k++)
  {
    struct MHD_WebSocketStream *ws = rec_stream (S_SERVER, 0);
    struct out o;
    size_t off = 0;
    bool failed = false;
    fail_at = (long) k;
    o.count = 0;
    while (off < in.n)
    {
      size_t rd;
      char *payload;
      size_t plen;
      int st;
      cur_from = off;
      cur_to = in.n;
      st = MHD_websocket_decode (ws, (const char *) in.d + off, in.n - off, &rd,
                                 &payload, &plen);
      off += rd;
      if (MHD_WEBSOCKET_STATUS_MEMORY_ERROR == st)
      {
        /* The refused call is the k-th, made on the byte the rule
           names; the header before it may count as read. */
        ck_assert (! failed);
        ck_assert_uint_eq (n_calls, k + 1);
        ck_assert_uint_le (off, w[k].at + 1);
        ck_assert_ptr_null (payload);
        ck_assert_uint_eq (plen, 0);
        ck_assert_int_eq (MHD_websocket_stream_is_valid (ws),
                          MHD_WEBSOCKET_VALIDITY_VALID);
        failed = true;
        continue;
      }
      if (MHD_WEBSOCKET_STATUS_OK == st)
        continue;
      ck_assert_int_gt (st, 0);
      o.status[o.count] = st;
      o.len[o.count] = plen;
      if (0 != plen)
        memcpy (o.payload[o.count], payload, plen);
      o.count++;
      MHD_websocket_free (ws, payload);
    }
    ck_assert (failed);
    same_out (&ref, &o);
    rec_stream_end (ws);
  }
  free (in.d);
}
END_TEST

static Suite *
alloc_suite (void)
{
  Suite *s = suite_create ("alloc");
  TCase *tc = tcase_create ("points");
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_contract_example_points);
  tcase_add_test (tc, test_contract_example_failure_and_retry);
  tcase_add_test (tc, test_header_alone_fails_at_header);
  tcase_add_test (tc, test_refused_call_is_made_again);
  tcase_add_test (tc, test_unfragmented_and_empty);
  tcase_add_test (tc, test_empty_fragments_cost_nothing);
  tcase_add_test (tc, test_control_frames_between_fragments);
  tcase_add_test (tc, test_many_fragments_one_call_each);
  tcase_add_test (tc, test_utf8_split_across_fragments);
  tcase_add_test (tc, test_want_fragments_fresh_buffers);
  tcase_add_test (tc, test_growth_bounded_by_max_payload);
  tcase_add_test (tc, test_over_limit_asks_nothing);
  tcase_add_test (tc, test_large_frame_waits_for_its_bytes);
  tcase_add_test (tc, test_every_call_can_fail_and_retry);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (alloc_suite ());
  int failed;
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (failed > 0) ? EXIT_FAILURE : EXIT_SUCCESS;
}
