/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_session.c
 * @brief The session layer (MHD_websocket_session_*, broadcasts) driven
 *        with scripted input, a fake clock and a writer that takes any
 *        number of bytes; what it wrote is decoded by a client stream.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ------------------------------------------------------------ fixture */

#define FX_OUT_MAX (1u << 20)
#define FX_MAX_MSGS 256

/** What a session did, and what it wrote. */
struct fx
{
  struct MHD_WebSocketSession *s;
  struct MHD_WebSocketSessionConfig *cfg;
  /* Messages seen by the callback. */
  int types[FX_MAX_MSGS];
  char *msgs[FX_MAX_MSGS];
  size_t lens[FX_MAX_MSGS];
  unsigned int nmsgs;
  /* Echo text and binary messages back from the callback. */
  int echo;
  /* End events. */
  int ends;
  int end_reason;
  unsigned short end_code;
  int end_want_read;
  int end_want_write;
  /* Bytes written. */
  unsigned char *out;
  size_t out_len;
};

static struct fx F;

static void
on_message (void *cls, struct MHD_WebSocketSession *s,
            enum MHD_WEBSOCKET_STATUS type, const char *data, size_t len)
{
  struct fx *f = cls;

  TU_REQUIRE (f == &F);
  TU_REQUIRE (f->nmsgs < FX_MAX_MSGS);
  f->types[f->nmsgs] = type;
  f->lens[f->nmsgs] = len;
  f->msgs[f->nmsgs] = malloc (len + 1);
  TU_REQUIRE (NULL != f->msgs[f->nmsgs]);
  if (0 != len)
    memcpy (f->msgs[f->nmsgs], data, len);
  f->msgs[f->nmsgs][len] = '\0';
  f->nmsgs++;
  if (f->echo && (MHD_WEBSOCKET_STATUS_TEXT_FRAME == type))
    (void) MHD_websocket_session_send_text (s, data, len);
  if (f->echo && (MHD_WEBSOCKET_STATUS_BINARY_FRAME == type))
    (void) MHD_websocket_session_send_binary (s, data, len);
}

static void
on_end (void *cls, struct MHD_WebSocketSession *s,
        enum MHD_WEBSOCKET_END_REASON reason, unsigned short code)
{
  struct fx *f = cls;

  TU_REQUIRE (f == &F);
  f->ends++;
  f->end_reason = reason;
  f->end_code = code;
  f->end_want_read = MHD_websocket_session_want_read (s);
  f->end_want_write = MHD_websocket_session_want_write (s);
}

/** A config with the test callbacks. */
static struct MHD_WebSocketSessionConfig *
fx_config (void)
{
  struct MHD_WebSocketSessionConfig *c = MHD_websocket_session_config_create ();

  ck_assert_ptr_nonnull (c);
  MHD_websocket_session_config_set_callbacks (c, on_message, on_end);
  return c;
}

static void
fx_reset (void)
{
  struct MHD_WebSocketSessionConfig *cfg = F.cfg;
  unsigned int i;

  for (i = 0; i < F.nmsgs; i++)
    free (F.msgs[i]);
  free (F.out);
  memset (&F, 0, sizeof (F));
  F.cfg = cfg;
  F.out = malloc (FX_OUT_MAX);
  ck_assert_ptr_nonnull (F.out);
}

static void
setup (void)
{
  tu_alloc_reset ();
  memset (&F, 0, sizeof (F));
  fx_reset ();
  F.cfg = fx_config ();
}

static void
teardown (void)
{
  if (NULL != F.s)
    MHD_websocket_session_free (F.s);
  F.s = NULL;
  MHD_websocket_session_config_free (F.cfg);
  F.cfg = NULL;
  fx_reset ();
  free (F.out);
  F.out = NULL;
}

static void
fx_set (enum MHD_WEBSOCKET_SESSION_OPTION o, unsigned long long v)
{
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                    MHD_websocket_session_config_set (F.cfg, o, v));
}

/** Creates F.s over a fresh server stream with @a flags. */
static void
fx_open (int flags, const char *deflate_answer, unsigned long long now)
{
  struct MHD_WebSocketStream *ws = tu_stream (flags, 0);

  if (NULL != deflate_answer)
    ck_assert_int_eq (
      MHD_WEBSOCKET_STATUS_OK,
      MHD_websocket_stream_enable_deflate (ws, deflate_answer, -1, 0, 0));
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                    MHD_websocket_session_create (&F.s, ws, F.cfg, &F, now));
}

/** Frees F.s and checks that the end event came exactly once and that
    nothing of the counting allocator is left. */
static void
fx_close_session (void)
{
  MHD_websocket_session_free (F.s);
  F.s = NULL;
  ck_assert_int_eq (1, F.ends);
  ck_assert_int_eq (0, tu_alloc_live);
}

/**
 * Writes the pending output, at most @a step bytes per write (0: all),
 * checking on every round that want_write agrees with pending.
 * @return bytes written
 */
static size_t
fx_flush (size_t step, unsigned long long now)
{
  size_t total = 0;

  for (;;)
  {
    struct MHD_WebSocketChunk ch[4];
    unsigned int n = MHD_websocket_session_pending (F.s, ch, 4);
    size_t room = (0 == step) ? (size_t) -1 : step;
    size_t w = 0;
    unsigned int i;

    ck_assert_int_eq (n > 0, MHD_websocket_session_want_write (F.s));
    if (0 == n)
      return total;
    for (i = 0; (i < n) && (room > 0); i++)
    {
      size_t take = (ch[i].len < room) ? ch[i].len : room;

      TU_REQUIRE (ch[i].len > 0);
      TU_REQUIRE (F.out_len + take <= FX_OUT_MAX);
      memcpy (F.out + F.out_len, ch[i].data, take);
      F.out_len += take;
      w += take;
      room -= take;
    }
    MHD_websocket_session_sent (F.s, w, now);
    total += w;
    if (MHD_websocket_session_ended (F.s))
      return total;
  }
}

/** A client frame (masked with a fixed key) appended to @a buf. */
static size_t
cframe (unsigned char *buf, unsigned b0, const void *payload, size_t len)
{
  static const uint8_t key[4] = { 0x12, 0x34, 0x56, 0x78 };

  return tu_frame (buf, b0, payload, len, key);
}

static void
fx_receive (const void *data, size_t len, unsigned long long now)
{
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                    MHD_websocket_session_receive (F.s, data, len, now));
}

/** Decodes what F wrote, as the client would (deflate_answer: with
    compression as agreed), and records the events in @a r. */
static void
peer_decode (struct tu_result *r, const char *deflate_answer)
{
  struct MHD_WebSocketStream *ws;
  size_t off = 0;
  long live = tu_alloc_live;

  memset (r, 0, sizeof (*r));
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                    MHD_websocket_stream_init2 (&ws, MHD_WEBSOCKET_FLAG_CLIENT,
                                                0, malloc, realloc, free, NULL,
                                                tu_rng));
  if (NULL != deflate_answer)
    ck_assert_int_eq (
      MHD_WEBSOCKET_STATUS_OK,
      MHD_websocket_stream_enable_deflate (ws, deflate_answer, -1, 0, 0));
  while (off < F.out_len)
  {
    size_t used = 0;
    char *p = NULL;
    size_t plen = 0;
    int st = MHD_websocket_decode (ws, (const char *) F.out + off,
                                   F.out_len - off, &used, &p, &plen);

    off += used;
    if (MHD_WEBSOCKET_STATUS_OK == st)
      break;
    ck_assert_int_gt (st, 0);
    ck_assert_uint_lt (r->count, TU_MAX_EVENTS);
    r->ev[r->count].status = st;
    r->ev[r->count].len = plen;
    r->ev[r->count].payload = malloc (plen + 1);
    memcpy (r->ev[r->count].payload, (NULL == p) ? "" : p, plen);
    r->ev[r->count].payload[plen] = '\0';
    r->ev[r->count].offset = off;
    r->count++;
    if (NULL != p)
      MHD_websocket_free (ws, p);
  }
  ck_assert_uint_eq (off, F.out_len);
  r->validity = MHD_websocket_stream_is_valid (ws);
  r->consumed = off;
  MHD_websocket_stream_free (ws);
  ck_assert_int_eq (live, tu_alloc_live);
}

static void
expect_event (const struct tu_result *r, size_t i, int status,
              const char *payload, size_t len)
{
  ck_assert_uint_gt (r->count, i);
  ck_assert_int_eq (status, r->ev[i].status);
  ck_assert_uint_eq (len, r->ev[i].len);
  ck_assert_mem_eq (payload, r->ev[i].payload, len);
}

/** A close event's code. */
static unsigned
close_code (const struct tu_result *r, size_t i)
{
  unsigned short code = 0;

  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_CLOSE_FRAME, r->ev[i].status);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                    MHD_websocket_split_close_reason (
                      r->ev[i].payload, r->ev[i].len, &code, NULL, NULL));
  return code;
}

/* ------------------------------------------------------------ input */

/** A client's script: text, a ping, binary in two fragments, an
    unsolicited pong, text in three fragments, a close 1000 "bye". */
static size_t
script (unsigned char *buf)
{
  size_t n = 0;
  static const char bye[] = "\x03\xe8"
                            "bye";

  n += cframe (buf + n, 0x81, "hello", 5);
  n += cframe (buf + n, 0x89, "p1", 2);
  n += cframe (buf + n, 0x02, "\x00\x01", 2);
  n += cframe (buf + n, 0x80, "\x02", 1);
  n += cframe (buf + n, 0x8A, "un", 2);
  n += cframe (buf + n, 0x01, "fr", 2);
  n += cframe (buf + n, 0x00, "ag", 2);
  n += cframe (buf + n, 0x80, "ment", 4);
  n += cframe (buf + n, 0x88, bye, 5);
  return n;
}

/** Feeds the script in pieces (the cut positions in @a cuts), echoing,
    and returns the bytes written in F.out. */
static void
run_script (const unsigned char *in, size_t len, const size_t *cuts,
            size_t ncuts, size_t step)
{
  size_t at = 0;
  size_t i;

  fx_reset ();
  F.echo = 1;
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  for (i = 0; i <= ncuts; i++)
  {
    size_t end = (i < ncuts) ? cuts[i] : len;

    fx_receive (in + at, end - at, 1);
    at = end;
  }
  (void) fx_flush (step, 2);
}

static void
check_script_result (void)
{
  struct tu_result r;

  /* The callback saw everything, in order. */
  ck_assert_uint_eq (6, F.nmsgs);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_TEXT_FRAME, F.types[0]);
  ck_assert_str_eq ("hello", F.msgs[0]);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_PING_FRAME, F.types[1]);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_BINARY_FRAME, F.types[2]);
  ck_assert_mem_eq ("\x00\x01\x02", F.msgs[2], 3);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_PONG_FRAME, F.types[3]);
  ck_assert_str_eq ("fragment", F.msgs[4]);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_CLOSE_FRAME, F.types[5]);
  /* The answer: the pong ahead of the echoes, the close last. */
  peer_decode (&r, NULL);
  ck_assert_uint_eq (5, r.count);
  expect_event (&r, 0, MHD_WEBSOCKET_STATUS_PONG_FRAME, "p1", 2);
  expect_event (&r, 1, MHD_WEBSOCKET_STATUS_TEXT_FRAME, "hello", 5);
  expect_event (&r, 2, MHD_WEBSOCKET_STATUS_BINARY_FRAME, "\x00\x01\x02", 3);
  expect_event (&r, 3, MHD_WEBSOCKET_STATUS_TEXT_FRAME, "fragment", 8);
  ck_assert_uint_eq (1000, close_code (&r, 4));
  /* Code alone: ECHO_CLOSE_REASON is off by default. */
  ck_assert_uint_eq (2, r.ev[4].len);
  tu_result_free (&r);
  ck_assert_int_eq (1, F.ends);
  ck_assert_int_eq (MHD_WEBSOCKET_END_PEER, F.end_reason);
  ck_assert_uint_eq (1000, F.end_code);
  ck_assert_int_eq (0, F.end_want_read);
  ck_assert_int_eq (0, F.end_want_write);
}

START_TEST (test_input_every_split)
{
  unsigned char in[256];
  size_t len = script (in);
  size_t cut;
  unsigned char *whole = malloc (FX_OUT_MAX);
  size_t whole_len;
  size_t cuts[256];

  run_script (in, len, NULL, 0, 0);
  check_script_result ();
  whole_len = F.out_len;
  memcpy (whole, F.out, whole_len);
  fx_close_session ();
  /* Split in two at every byte, then in three at every pair. */
  for (cut = 0; cut <= len; cut++)
  {
    size_t cut2;

    for (cut2 = cut; cut2 <= len; cut2 += 7)
    {
      cuts[0] = cut;
      cuts[1] = cut2;
      run_script (in, len, cuts, 2, 0);
      check_script_result ();
      ck_assert_uint_eq (whole_len, F.out_len);
      ck_assert_mem_eq (whole, F.out, whole_len);
      fx_close_session ();
    }
  }
  /* One byte per call. */
  for (cut = 0; cut < len; cut++)
    cuts[cut] = cut + 1;
  run_script (in, len, cuts, len - 1, 0);
  check_script_result ();
  ck_assert_mem_eq (whole, F.out, whole_len);
  fx_close_session ();
  free (whole);
}
END_TEST

/* ------------------------------------------------------------ output */

START_TEST (test_partial_writes_every_size)
{
  unsigned char in[256];
  size_t len = script (in);
  unsigned char *whole = malloc (FX_OUT_MAX);
  size_t whole_len;
  size_t step;

  run_script (in, len, NULL, 0, 0);
  whole_len = F.out_len;
  memcpy (whole, F.out, whole_len);
  fx_close_session ();
  for (step = 1; step <= whole_len; step++)
  {
    run_script (in, len, NULL, 0, step);
    check_script_result ();
    ck_assert_uint_eq (whole_len, F.out_len);
    ck_assert_mem_eq (whole, F.out, whole_len);
    fx_close_session ();
  }
  free (whole);
}
END_TEST

/** A ping arrives while a data frame is half written, after @a done of
    its bytes: the pong waits for the frame's end, and goes ahead of the
    frames not yet handed out. */
START_TEST (test_pong_never_inside_a_frame)
{
  char big[300];
  unsigned char ping[32];
  size_t plen = cframe (ping, 0x89, "pp", 2);
  size_t done = (size_t) _i;
  struct MHD_WebSocketChunk ch[8];
  unsigned int n;
  struct tu_result r;

  memset (big, 'x', sizeof (big));
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_binary (F.s, big, sizeof (big)));
  /* Hand out only the first frame, write part of it. */
  n = MHD_websocket_session_pending (F.s, ch, 1);
  ck_assert_uint_eq (1, n);
  ck_assert_uint_eq (sizeof (big) + 4, ch[0].len);
  memcpy (F.out, ch[0].data, done);
  F.out_len = done;
  MHD_websocket_session_sent (F.s, done, 1);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, "after", 5));
  fx_receive (ping, plen, 2);
  n = MHD_websocket_session_pending (F.s, ch, 8);
  ck_assert_uint_eq (3, n);
  ck_assert_uint_eq (sizeof (big) + 4 - done, ch[0].len);
  ck_assert_uint_eq (4, ch[1].len); /* the pong */
  ck_assert_uint_eq (7, ch[2].len);
  (void) fx_flush (0, 3);
  peer_decode (&r, NULL);
  ck_assert_uint_eq (3, r.count);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_BINARY_FRAME, r.ev[0].status);
  ck_assert_uint_eq (sizeof (big), r.ev[0].len);
  expect_event (&r, 1, MHD_WEBSOCKET_STATUS_PONG_FRAME, "pp", 2);
  expect_event (&r, 2, MHD_WEBSOCKET_STATUS_TEXT_FRAME, "after", 5);
  tu_result_free (&r);
}
END_TEST

/** Chunks already handed out keep their order even when nothing of
    them was retired (a caller with a write in flight). */
START_TEST (test_handed_out_frames_keep_their_place)
{
  unsigned char ping[32];
  size_t plen = cframe (ping, 0x89, "", 0);
  struct MHD_WebSocketChunk ch[8];
  unsigned int n;

  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, "one", 3));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, "two", 3));
  n = MHD_websocket_session_pending (F.s, ch, 8);
  ck_assert_uint_eq (2, n);
  fx_receive (ping, plen, 1);
  n = MHD_websocket_session_pending (F.s, ch, 8);
  ck_assert_uint_eq (3, n);
  ck_assert_mem_eq ("\x81\x03one", ch[0].data, 5);
  ck_assert_mem_eq ("\x81\x03two", ch[1].data, 5);
  ck_assert_mem_eq ("\x8a\x00", ch[2].data, 2);
  /* A pending() with less room hands out no more than asked. */
  n = MHD_websocket_session_pending (F.s, ch, 1);
  ck_assert_uint_eq (1, n);
  ck_assert_uint_eq (5, ch[0].len);
}
END_TEST

/* ------------------------------------------------------------ pings */

START_TEST (test_pong_cap_under_ping_flood)
{
  unsigned char in[64 * 20];
  size_t len = 0;
  int i;
  struct tu_result r;

  fx_set (MHD_WEBSOCKET_SESSION_OPTION_MAX_PONGS_QUEUED, 3);
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  for (i = 0; i < 20; i++)
  {
    char p[4];

    snprintf (p, sizeof (p), "%02d", i);
    len += cframe (in + len, 0x89, p, 2);
  }
  fx_receive (in, len, 1);
  /* Every ping was seen; only three pongs wait. */
  ck_assert_uint_eq (20, F.nmsgs);
  ck_assert_uint_eq (3 * 4, fx_flush (0, 2));
  peer_decode (&r, NULL);
  ck_assert_uint_eq (3, r.count);
  expect_event (&r, 0, MHD_WEBSOCKET_STATUS_PONG_FRAME, "00", 2);
  expect_event (&r, 2, MHD_WEBSOCKET_STATUS_PONG_FRAME, "02", 2);
  tu_result_free (&r);
  /* Once written, pings are answered again. */
  F.out_len = 0;
  fx_receive (in, cframe (in, 0x89, "ok", 2), 3);
  ck_assert_uint_eq (4, fx_flush (0, 4));
  ck_assert_mem_eq ("\x8a\x02ok", F.out, 4);
}
END_TEST

START_TEST (test_unsolicited_pong_is_legal)
{
  unsigned char in[32];

  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  fx_receive (in, cframe (in, 0x8A, "hb", 2), 1);
  ck_assert_uint_eq (1, F.nmsgs);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_PONG_FRAME, F.types[0]);
  ck_assert_int_eq (0, MHD_websocket_session_want_write (F.s));
  ck_assert_int_eq (1, MHD_websocket_session_want_read (F.s));
  ck_assert_int_eq (0, F.ends);
}
END_TEST

START_TEST (test_app_ping_goes_ahead_of_data)
{
  struct tu_result r;
  char big[126];

  memset (big, 'y', sizeof (big));
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, "d", 1));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_ping (F.s, "pi", 2));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_INVALID,
                    MHD_websocket_session_send_ping (F.s, big, sizeof (big)));
  (void) fx_flush (0, 1);
  peer_decode (&r, NULL);
  ck_assert_uint_eq (2, r.count);
  expect_event (&r, 0, MHD_WEBSOCKET_STATUS_PING_FRAME, "pi", 2);
  expect_event (&r, 1, MHD_WEBSOCKET_STATUS_TEXT_FRAME, "d", 1);
  tu_result_free (&r);
}
END_TEST

/* ------------------------------------------------------------ closing */

/** The peer closes with @a payload; the answer's bytes are compared. */
static void
peer_close_case (const char *payload, size_t len, const char *answer,
                 size_t answer_len, unsigned short end_code)
{
  unsigned char in[160];

  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  fx_receive (in, cframe (in, 0x88, payload, len), 1);
  ck_assert_int_eq (0, MHD_websocket_session_want_read (F.s));
  ck_assert_int_eq (1, MHD_websocket_session_want_write (F.s));
  ck_assert_int_eq (0, F.ends);
  (void) fx_flush (0, 2);
  ck_assert_uint_eq (answer_len, F.out_len);
  ck_assert_mem_eq (answer, F.out, answer_len);
  ck_assert_int_eq (1, F.ends);
  ck_assert_int_eq (MHD_WEBSOCKET_END_PEER, F.end_reason);
  ck_assert_uint_eq (end_code, F.end_code);
  ck_assert_int_eq (1, MHD_websocket_session_write_done (F.s));
  ck_assert_int_eq (1, MHD_websocket_session_ended (F.s));
}

START_TEST (test_peer_close_code_alone)
{
  peer_close_case ("\x03\xe9"
                   "gone",
                   6, "\x88\x02\x03\xe9", 4, 1001);
}
END_TEST

START_TEST (test_peer_close_reason_echoed)
{
  fx_set (MHD_WEBSOCKET_SESSION_OPTION_ECHO_CLOSE_REASON, 1);
  peer_close_case ("\x03\xe9"
                   "gone",
                   6,
                   "\x88\x06\x03\xe9"
                   "gone",
                   8, 1001);
}
END_TEST

START_TEST (test_peer_close_empty)
{
  peer_close_case ("", 0, "\x88\x00", 2, 0);
}
END_TEST

START_TEST (test_peer_close_empty_close_code)
{
  fx_set (MHD_WEBSOCKET_SESSION_OPTION_EMPTY_CLOSE_CODE, 1000);
  peer_close_case ("", 0, "\x88\x02\x03\xe8", 4, 0);
}
END_TEST

START_TEST (test_peer_close_undefined_code)
{
  /* 5000 and up pass the decoder; RFC 6455 defines none: 1002. */
  peer_close_case ("\x13\x88", 2, "\x88\x02\x03\xea", 4, 5000);
}
END_TEST

START_TEST (test_peer_close_after_queued_data)
{
  unsigned char in[32];
  struct tu_result r;

  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, "last", 4));
  fx_receive (in, cframe (in, 0x88, "\x03\xe8", 2), 1);
  /* Messages sent after the close are refused. */
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_CLOSED,
                    MHD_websocket_session_send_text (F.s, "no", 2));
  (void) fx_flush (0, 2);
  peer_decode (&r, NULL);
  ck_assert_uint_eq (2, r.count);
  expect_event (&r, 0, MHD_WEBSOCKET_STATUS_TEXT_FRAME, "last", 4);
  ck_assert_uint_eq (1000, close_code (&r, 1));
  tu_result_free (&r);
  ck_assert_int_eq (1, F.ends);
}
END_TEST

START_TEST (test_app_close_then_peer_answers)
{
  unsigned char in[64];
  struct tu_result r;

  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, "bye", 3));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_INVALID,
                    MHD_websocket_session_close (F.s, 1005, NULL));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_INVALID,
                    MHD_websocket_session_close (F.s, 0, "reason"));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_close (F.s, 4000, "done"));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_CLOSED,
                    MHD_websocket_session_close (F.s, 1000, NULL));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_CLOSED,
                    MHD_websocket_session_send_text (F.s, "x", 1));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_CLOSED,
                    MHD_websocket_session_send_ping (F.s, "x", 1));
  ck_assert_int_eq (0, MHD_websocket_session_write_done (F.s));
  (void) fx_flush (0, 1);
  ck_assert_int_eq (1, MHD_websocket_session_write_done (F.s));
  ck_assert_int_eq (1, MHD_websocket_session_want_read (F.s));
  ck_assert_int_eq (0, F.ends);
  peer_decode (&r, NULL);
  ck_assert_uint_eq (2, r.count);
  expect_event (&r, 0, MHD_WEBSOCKET_STATUS_TEXT_FRAME, "bye", 3);
  expect_event (&r, 1, MHD_WEBSOCKET_STATUS_CLOSE_FRAME,
                "\x0f\xa0"
                "done",
                6);
  tu_result_free (&r);
  /* A message of the peer's that crossed our close is dropped; a ping
     is not answered any more. */
  {
    size_t n = cframe (in, 0x81, "late", 4);

    n += cframe (in + n, 0x89, "", 0);
    n += cframe (in + n, 0x88, "\x0f\xa0", 2);
    fx_receive (in, n, 2);
  }
  ck_assert_uint_eq (2, F.nmsgs); /* the ping and the close */
  ck_assert_int_eq (1, F.ends);
  ck_assert_int_eq (MHD_WEBSOCKET_END_APP, F.end_reason);
  ck_assert_uint_eq (4000, F.end_code);
}
END_TEST

START_TEST (test_app_close_then_eof)
{
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_close (F.s, 1000, NULL));
  (void) fx_flush (0, 1);
  MHD_websocket_session_eof (F.s, 0, 2);
  ck_assert_int_eq (1, F.ends);
  ck_assert_int_eq (MHD_WEBSOCKET_END_APP, F.end_reason);
  MHD_websocket_session_eof (F.s, 1, 3);
  ck_assert_int_eq (1, F.ends);
}
END_TEST

/* The peer's stream ends while our close waits unwritten (found by
   fuzz_session: the queue checks of debug builds abort if the unsent
   close is still counted). */
START_TEST (test_eof_with_close_unsent)
{
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, "x", 1));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_close (F.s, 1000, NULL));
  MHD_websocket_session_eof (F.s, 0, 1);
  ck_assert_int_eq (1, F.ends);
  ck_assert_int_eq (MHD_WEBSOCKET_END_APP, F.end_reason);
  ck_assert_int_eq (0, MHD_websocket_session_want_write (F.s));
  ck_assert_int_eq (0, MHD_websocket_session_write_done (F.s));
  ck_assert_uint_eq ((unsigned long long) -1,
                     MHD_websocket_session_next_deadline (F.s));
}
END_TEST

START_TEST (test_eof_without_close)
{
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, "x", 1));
  MHD_websocket_session_eof (F.s, _i, 1);
  ck_assert_int_eq (1, F.ends);
  ck_assert_int_eq (_i ? MHD_WEBSOCKET_END_ERROR : MHD_WEBSOCKET_END_PEER,
                    F.end_reason);
  ck_assert_int_eq (0, F.end_want_write);
  ck_assert_uint_eq (0, MHD_websocket_session_queued (F.s));
  /* Only the session itself is left. */
  ck_assert_int_eq (1, tu_alloc_live);
}
END_TEST

START_TEST (test_protocol_error_closes_1002)
{
  unsigned char in[32];
  struct MHD_WebSocketChunk ch[4];
  struct tu_result r;

  /* With and without the decoder's generated close frame. */
  fx_open (MHD_WEBSOCKET_FLAG_SERVER
             | (_i ? MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR : 0),
           NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, "handed", 6));
  ck_assert_uint_eq (1, MHD_websocket_session_pending (F.s, ch, 4));
  MHD_websocket_session_sent (F.s, 1, 1);
  memcpy (F.out, ch[0].data, 1);
  F.out_len = 1;
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, "queued", 6));
  /* An unmasked frame from a client. */
  tu_frame (in, 0x81, "x", 1, NULL);
  fx_receive (in, 3, 2);
  ck_assert_uint_eq (0, F.nmsgs);
  /* A send after the error is refused; what was queued before it still
     goes out, ahead of the close. */
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_CLOSED,
                    MHD_websocket_session_send_text (F.s, "late", 4));
  (void) fx_flush (0, 3);
  peer_decode (&r, NULL);
  ck_assert_uint_eq (3, r.count);
  expect_event (&r, 0, MHD_WEBSOCKET_STATUS_TEXT_FRAME, "handed", 6);
  expect_event (&r, 1, MHD_WEBSOCKET_STATUS_TEXT_FRAME, "queued", 6);
  ck_assert_uint_eq (1002, close_code (&r, 2));
  tu_result_free (&r);
  /* Waiting for the peer's close or the end of its stream. */
  ck_assert_int_eq (0, F.ends);
  MHD_websocket_session_eof (F.s, 0, 4);
  ck_assert_int_eq (MHD_WEBSOCKET_END_PROTOCOL, F.end_reason);
  ck_assert_uint_eq (1002, F.end_code);
}
END_TEST

START_TEST (test_bad_utf8_closes_1007)
{
  unsigned char in[32];
  struct tu_result r;

  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  fx_receive (in, cframe (in, 0x81, "\xff", 1), 1);
  (void) fx_flush (0, 2);
  peer_decode (&r, NULL);
  ck_assert_uint_eq (1, r.count);
  ck_assert_uint_eq (1007, close_code (&r, 0));
  tu_result_free (&r);
}
END_TEST

/* ------------------------------------------------------------ time */

START_TEST (test_idle_ping_deadlines)
{
  unsigned char in[32];

  fx_set (MHD_WEBSOCKET_SESSION_OPTION_PING_INTERVAL_MS, 1000);
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 500);
  ck_assert_uint_eq (1500, MHD_websocket_session_next_deadline (F.s));
  MHD_websocket_session_tick (F.s, 1499);
  ck_assert_int_eq (0, MHD_websocket_session_want_write (F.s));
  MHD_websocket_session_tick (F.s, 1500);
  ck_assert_int_eq (1, MHD_websocket_session_want_write (F.s));
  ck_assert_uint_eq (2500, MHD_websocket_session_next_deadline (F.s));
  (void) fx_flush (0, 1500);
  ck_assert_mem_eq ("\x89\x00", F.out, 2);
  ck_assert_uint_eq (2, F.out_len);
  /* Hearing from the peer moves the next ping. */
  fx_receive (in, cframe (in, 0x8A, "", 0), 2200);
  ck_assert_uint_eq (3200, MHD_websocket_session_next_deadline (F.s));
  MHD_websocket_session_tick (F.s, 3199);
  ck_assert_int_eq (0, MHD_websocket_session_want_write (F.s));
  MHD_websocket_session_tick (F.s, 3200);
  ck_assert_int_eq (1, MHD_websocket_session_want_write (F.s));
  ck_assert_int_eq (0, F.ends);
}
END_TEST

START_TEST (test_idle_pings_do_not_pile_up)
{
  unsigned long long t;

  fx_set (MHD_WEBSOCKET_SESSION_OPTION_PING_INTERVAL_MS, 100);
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  /* A peer that neither sends nor reads: one ping waits, no more. */
  for (t = 100; t <= 1000; t += 100)
  {
    ck_assert_uint_eq (t, MHD_websocket_session_next_deadline (F.s));
    MHD_websocket_session_tick (F.s, t);
  }
  ck_assert_uint_eq (2, fx_flush (0, 1000));
  /* Once it went out, the next interval sends the next. */
  MHD_websocket_session_tick (F.s, 1100);
  ck_assert_uint_eq (2, fx_flush (0, 1100));
}
END_TEST

START_TEST (test_idle_timeout_closes_1001)
{
  unsigned char in[32];
  struct tu_result r;

  fx_set (MHD_WEBSOCKET_SESSION_OPTION_IDLE_TIMEOUT_MS, 3000);
  fx_set (MHD_WEBSOCKET_SESSION_OPTION_CLOSE_TIMEOUT_MS, 500);
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  fx_receive (in, cframe (in, 0x8A, "", 0), 100);
  ck_assert_uint_eq (3100, MHD_websocket_session_next_deadline (F.s));
  MHD_websocket_session_tick (F.s, 3099);
  ck_assert_int_eq (0, MHD_websocket_session_want_write (F.s));
  MHD_websocket_session_tick (F.s, 3100);
  ck_assert_int_eq (1, MHD_websocket_session_want_write (F.s));
  ck_assert_uint_eq (3600, MHD_websocket_session_next_deadline (F.s));
  (void) fx_flush (0, 3100);
  peer_decode (&r, NULL);
  ck_assert_uint_eq (1, r.count);
  expect_event (&r, 0, MHD_WEBSOCKET_STATUS_CLOSE_FRAME,
                "\x03\xe9"
                "idle timeout",
                14);
  tu_result_free (&r);
  fx_receive (in, cframe (in, 0x88, "\x03\xe9", 2), 3200);
  ck_assert_int_eq (1, F.ends);
  ck_assert_int_eq (MHD_WEBSOCKET_END_IDLE, F.end_reason);
  ck_assert_uint_eq ((unsigned long long) -1,
                     MHD_websocket_session_next_deadline (F.s));
}
END_TEST

START_TEST (test_close_timeout)
{
  fx_set (MHD_WEBSOCKET_SESSION_OPTION_CLOSE_TIMEOUT_MS, 2000);
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_uint_eq ((unsigned long long) -1,
                     MHD_websocket_session_next_deadline (F.s));
  MHD_websocket_session_tick (F.s, 100);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_close (F.s, 1000, NULL));
  ck_assert_uint_eq (2100, MHD_websocket_session_next_deadline (F.s));
  (void) fx_flush (0, 150);
  MHD_websocket_session_tick (F.s, 2099);
  ck_assert_int_eq (0, F.ends);
  ck_assert_int_eq (1, MHD_websocket_session_want_read (F.s));
  MHD_websocket_session_tick (F.s, 2100);
  ck_assert_int_eq (1, F.ends);
  ck_assert_int_eq (MHD_WEBSOCKET_END_CLOSE_TIMEOUT, F.end_reason);
  ck_assert_int_eq (0, MHD_websocket_session_want_read (F.s));
  ck_assert_int_eq (0, MHD_websocket_session_want_write (F.s));
}
END_TEST

/* ------------------------------------------------------------ bounds */

/** A binary message whose frame is @a frame_len bytes (2 to 127). */
static enum MHD_WEBSOCKET_SEND_RESULT
send_frame_of (size_t frame_len)
{
  static char zeros[200];

  ck_assert_uint_ge (frame_len, 2);
  ck_assert_uint_le (frame_len, 127);
  return MHD_websocket_session_send_binary (F.s, zeros, frame_len - 2);
}

START_TEST (test_soft_bound_exactly)
{
  size_t i;

  fx_set (MHD_WEBSOCKET_SESSION_OPTION_SOFT_BOUND, 100);
  fx_set (MHD_WEBSOCKET_SESSION_OPTION_HARD_BOUND, 1000);
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK, send_frame_of (100));
  ck_assert_uint_eq (100, MHD_websocket_session_queued (F.s));
  ck_assert_int_eq (1, MHD_websocket_session_want_read (F.s));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_BACKPRESSURE, send_frame_of (2));
  ck_assert_int_eq (0, MHD_websocket_session_want_read (F.s));
  /* Retire one byte at a time: reading resumes at 50, not before. */
  for (i = 0; i < 52; i++)
  {
    struct MHD_WebSocketChunk ch[4];

    ck_assert_int_eq (0, MHD_websocket_session_want_read (F.s));
    ck_assert_uint_gt (MHD_websocket_session_pending (F.s, ch, 4), 0);
    MHD_websocket_session_sent (F.s, 1, 1);
  }
  ck_assert_uint_eq (50, MHD_websocket_session_queued (F.s));
  ck_assert_int_eq (1, MHD_websocket_session_want_read (F.s));
}
END_TEST

START_TEST (test_hard_bound_exactly)
{
  struct MHD_WebSocketChunk ch[4];

  fx_set (MHD_WEBSOCKET_SESSION_OPTION_SOFT_BOUND, 100);
  fx_set (MHD_WEBSOCKET_SESSION_OPTION_HARD_BOUND, 200);
  fx_set (MHD_WEBSOCKET_SESSION_OPTION_CLOSE_ON_HARD_BOUND, 0);
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK, send_frame_of (100));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_BACKPRESSURE, send_frame_of (98));
  /* 198 queued: a 3-byte frame would pass 200 by one: refused whole,
     nothing queued; a 2-byte one reaches 200 exactly: queued. */
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_REFUSED, send_frame_of (3));
  ck_assert_uint_eq (198, MHD_websocket_session_queued (F.s));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_BACKPRESSURE, send_frame_of (2));
  ck_assert_uint_eq (200, MHD_websocket_session_queued (F.s));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_REFUSED, send_frame_of (2));
  ck_assert_uint_eq (200, MHD_websocket_session_queued (F.s));
  /* The session stays open; room made by writing is usable. */
  ck_assert_uint_gt (MHD_websocket_session_pending (F.s, ch, 4), 0);
  MHD_websocket_session_sent (F.s, 2, 1);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_BACKPRESSURE, send_frame_of (2));
  ck_assert_uint_eq (200, MHD_websocket_session_queued (F.s));
  ck_assert_int_eq (0, MHD_websocket_session_ended (F.s));
}
END_TEST

START_TEST (test_hard_bound_closes_1008)
{
  struct MHD_WebSocketChunk ch[4];
  struct tu_result r;

  fx_set (MHD_WEBSOCKET_SESSION_OPTION_SOFT_BOUND, 100);
  fx_set (MHD_WEBSOCKET_SESSION_OPTION_HARD_BOUND, 200);
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, NULL, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK, send_frame_of (100));
  /* The first frame is partly written. */
  ck_assert_uint_eq (1, MHD_websocket_session_pending (F.s, ch, 1));
  memcpy (F.out, ch[0].data, 10);
  F.out_len = 10;
  MHD_websocket_session_sent (F.s, 10, 1);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_BACKPRESSURE, send_frame_of (100));
  ck_assert_uint_eq (190, MHD_websocket_session_queued (F.s));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_REFUSED, send_frame_of (11));
  /* The whole unsent frame is dropped, the begun one finishes, then
     the 1008. */
  ck_assert_uint_eq (90, MHD_websocket_session_queued (F.s));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_CLOSED, send_frame_of (2));
  (void) fx_flush (0, 2);
  peer_decode (&r, NULL);
  ck_assert_uint_eq (2, r.count);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_BINARY_FRAME, r.ev[0].status);
  ck_assert_uint_eq (98, r.ev[0].len);
  ck_assert_uint_eq (1008, close_code (&r, 1));
  tu_result_free (&r);
  MHD_websocket_session_eof (F.s, 0, 3);
  ck_assert_int_eq (MHD_WEBSOCKET_END_STALLED, F.end_reason);
}
END_TEST

/* ------------------------------------------------------------ memory */

static const char deflate_nct[] =
  "permessage-deflate; server_no_context_takeover";

/**
 * A whole session's life with allocation number @a fail_at failing
 * (-1: none).  Every step must cope; nothing may leak.
 * @return 1 when no allocation failed
 */
static int
alloc_scenario (long fail_at, int use_deflate)
{
  unsigned char in[512];
  size_t n = 0;
  struct MHD_WebSocketStream *ws;
  struct MHD_WebSocketBroadcast *bc = NULL;
  enum MHD_WEBSOCKET_STATUS st;
  static const char text[] =
    "a message long enough to be worth compressing, compressing, compressing";

  fx_reset ();
  tu_alloc_reset ();
  F.echo = 1;
  ws = tu_stream (MHD_WEBSOCKET_FLAG_SERVER, 0);
  if (use_deflate)
    ck_assert_int_eq (
      MHD_WEBSOCKET_STATUS_OK,
      MHD_websocket_stream_enable_deflate (ws, deflate_nct, -1, 0, 0));
  tu_alloc_fail_at = fail_at;
  (void) MHD_websocket_broadcast_create (&bc, 0, text, sizeof (text) - 1,
                                         tu_malloc, tu_free);
  st = MHD_websocket_session_create (&F.s, ws, F.cfg, &F, 0);
  if (MHD_WEBSOCKET_STATUS_OK != st)
  {
    ck_assert_int_eq (MHD_WEBSOCKET_STATUS_MEMORY_ERROR, st);
    ck_assert_ptr_null (F.s);
    MHD_websocket_broadcast_release (bc);
    ck_assert_int_eq (0, tu_alloc_live);
    return 0;
  }
  n += cframe (in + n, 0x81, text, sizeof (text) - 1);
  n += cframe (in + n, 0x89, "ping", 4);
  n += cframe (in + n, 0x02, "ab", 2);
  n += cframe (in + n, 0x80, "cd", 2);
  st = MHD_websocket_session_receive (F.s, (const char *) in, n, 1);
  ck_assert (MHD_WEBSOCKET_STATUS_OK == st
             || MHD_WEBSOCKET_STATUS_MEMORY_ERROR == st);
  if (MHD_WEBSOCKET_STATUS_MEMORY_ERROR == st)
    ck_assert_int_eq (1, F.ends);
  if (NULL != bc)
  {
    enum MHD_WEBSOCKET_SEND_RESULT r =
      MHD_websocket_session_send_broadcast (F.s, bc);

    ck_assert (MHD_WEBSOCKET_SEND_OK == r
               || MHD_WEBSOCKET_SEND_MEMORY_ERROR == r
               || MHD_WEBSOCKET_SEND_CLOSED == r);
    MHD_websocket_broadcast_release (bc);
  }
  (void) MHD_websocket_session_send_ping (F.s, "x", 1);
  (void) fx_flush (7, 2);
  (void) MHD_websocket_session_close (F.s, 1000, "end");
  (void) fx_flush (0, 3);
  n = cframe (in, 0x88, "\x03\xe8", 2);
  (void) MHD_websocket_session_receive (F.s, (const char *) in, n, 4);
  ck_assert_int_eq (1, MHD_websocket_session_ended (F.s));
  fx_close_session ();
  return tu_alloc_calls <= fail_at || fail_at < 0;
}

START_TEST (test_failure_at_every_allocation)
{
  long n;
  int done = 0;

  for (n = 0; (n < 10000) && ! done; n++)
    done = alloc_scenario (n, _i);
  ck_assert (done);
  /* The scenario did allocate: the loop exercised real failures. */
  ck_assert_int_gt (n, 5);
}
END_TEST

/* ------------------------------------------------------------ broadcast */

#define NSESS 5

START_TEST (test_broadcast_shares_one_frame)
{
  struct MHD_WebSocketSession *ss[NSESS];
  struct MHD_WebSocketBroadcast *bc;
  struct MHD_WebSocketBroadcast *bad;
  const char *first = NULL;
  int i;

  tu_alloc_reset ();
  ck_assert_int_eq (
    MHD_WEBSOCKET_STATUS_OK,
    MHD_websocket_broadcast_create (&bc, 0, "to all", 6, tu_malloc, tu_free));
  ck_assert_int_eq (
    MHD_WEBSOCKET_STATUS_PARAMETER_ERROR,
    MHD_websocket_broadcast_create (&bad, 0, "\xc3", 1, NULL, NULL));
  ck_assert_ptr_null (bad);
  for (i = 0; i < NSESS; i++)
  {
    struct MHD_WebSocketStream *ws = tu_stream (MHD_WEBSOCKET_FLAG_SERVER, 0);

    ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                      MHD_websocket_session_create (&ss[i], ws, F.cfg, &F, 0));
    ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                      MHD_websocket_session_send_broadcast (ss[i], bc));
  }
  /* The creator's reference goes first; the sessions keep the frame. */
  MHD_websocket_broadcast_release (bc);
  for (i = 0; i < NSESS; i++)
  {
    struct MHD_WebSocketChunk ch[2];

    ck_assert_uint_eq (1, MHD_websocket_session_pending (ss[i], ch, 2));
    ck_assert_uint_eq (8, ch[0].len);
    ck_assert_mem_eq ("\x81\x06to all", ch[0].data, 8);
    if (NULL == first)
      first = ch[0].data;
    /* The same bytes, not a copy. */
    ck_assert_ptr_eq (first, ch[0].data);
    MHD_websocket_session_sent (ss[i], 3, 1);
  }
  for (i = 0; i < NSESS; i++)
  {
    if (i % 2)
      MHD_websocket_session_sent (ss[i], 5, 2);
    MHD_websocket_session_free (ss[i]);
  }
  ck_assert_int_eq (0, tu_alloc_live);
}
END_TEST

/** A session with @a answer gets the broadcast of @a len bytes
    compressed (@a want_packed) or plain, and its peer decodes it. */
static void
broadcast_case (const char *answer, size_t len, int want_packed)
{
  struct MHD_WebSocketBroadcast *bc;
  char *msg = malloc (len + 1);
  struct tu_result r;
  size_t i;

  for (i = 0; i < len; i++)
    msg[i] = "abcabcabdabcabcx"[i % 16];
  fx_reset ();
  tu_alloc_reset ();
  ck_assert_int_eq (
    MHD_WEBSOCKET_STATUS_OK,
    MHD_websocket_broadcast_create (&bc, 0, msg, len, tu_malloc, tu_free));
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, answer, 0);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_broadcast (F.s, bc));
  (void) fx_flush (0, 1);
  ck_assert_int_eq (want_packed, 0 != (F.out[0] & 0x40));
  if (want_packed)
    ck_assert_uint_lt (F.out_len, len);
  peer_decode (&r, answer);
  ck_assert_uint_eq (1, r.count);
  expect_event (&r, 0, MHD_WEBSOCKET_STATUS_TEXT_FRAME, msg, len);
  tu_result_free (&r);
  MHD_websocket_broadcast_release (bc);
  fx_close_session ();
  free (msg);
}

START_TEST (test_broadcast_compressed_only_where_it_fits)
{
  broadcast_case (deflate_nct, 2000, 1);
  /* Context takeover: the standalone frame would desynchronise it. */
  broadcast_case ("permessage-deflate", 2000, 0);
  /* A small window takes a short message... */
  broadcast_case ("permessage-deflate; server_no_context_takeover; "
                  "server_max_window_bits=9",
                  400, 1);
  broadcast_case ("permessage-deflate; server_no_context_takeover; "
                  "server_max_window_bits=8",
                  200, 1);
  /* ...but not one longer than its window. */
  broadcast_case ("permessage-deflate; server_no_context_takeover; "
                  "server_max_window_bits=9",
                  2000, 0);
  /* No compression agreed. */
  broadcast_case (NULL, 2000, 0);
}
END_TEST

START_TEST (test_broadcast_to_many_mixed_sessions)
{
  static const char *answers[] = {
    deflate_nct, NULL, "permessage-deflate", deflate_nct,
    "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
  };
  struct MHD_WebSocketSession *ss[5];
  struct MHD_WebSocketBroadcast *bc;
  char msg[800];
  const char *packed = NULL;
  int i;

  memset (msg, 'q', sizeof (msg));
  tu_alloc_reset ();
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                    MHD_websocket_broadcast_create (&bc, 1, msg, sizeof (msg),
                                                    tu_malloc, tu_free));
  for (i = 0; i < 5; i++)
  {
    struct MHD_WebSocketStream *ws = tu_stream (MHD_WEBSOCKET_FLAG_SERVER, 0);
    struct MHD_WebSocketChunk ch[2];

    if (NULL != answers[i])
      ck_assert_int_eq (
        MHD_WEBSOCKET_STATUS_OK,
        MHD_websocket_stream_enable_deflate (ws, answers[i], -1, 0, 0));
    ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                      MHD_websocket_session_create (&ss[i], ws, F.cfg, &F, 0));
    ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                      MHD_websocket_session_send_broadcast (ss[i], bc));
    ck_assert_uint_eq (1, MHD_websocket_session_pending (ss[i], ch, 2));
    if ((0 == i) || (3 == i) || (4 == i))
    {
      ck_assert (0 != (ch[0].data[0] & 0x40));
      if (NULL == packed)
        packed = ch[0].data;
      ck_assert_ptr_eq (packed, ch[0].data);
    }
    else
    {
      ck_assert_uint_eq (sizeof (msg) + 4, ch[0].len);
      ck_assert (0 == (ch[0].data[0] & 0x40));
    }
  }
  MHD_websocket_broadcast_release (bc);
  for (i = 0; i < 5; i++)
    MHD_websocket_session_free (ss[i]);
  ck_assert_int_eq (0, tu_alloc_live);
}
END_TEST


/* The broadcast's allocator for the threads test: counts atomically. */
static long bc_live;

static void *
bc_malloc (size_t len)
{
  void *p = malloc (len);

  if (NULL != p)
    __atomic_add_fetch (&bc_live, 1, __ATOMIC_RELAXED);
  return p;
}

static void
bc_free (void *p)
{
  if (NULL != p)
    __atomic_sub_fetch (&bc_live, 1, __ATOMIC_RELAXED);
  free (p);
}

#define BC_THREADS 4
#define BC_ROUNDS 50

struct bc_job
{
  struct MHD_WebSocketBroadcast *bc[BC_ROUNDS];
  const char *packed[BC_ROUNDS];
  int failures;
};

/** One thread's sessions: each round queues a broadcast on a fresh
    session that takes the compressed frame (the first asker of any
    thread makes it), writes half of it, and frees the session (dropping
    its reference) while other threads do the same with the same
    broadcasts. */
static void *
bc_thread (void *arg)
{
  struct bc_job *job = arg;
  struct MHD_WebSocketSessionConfig *cfg =
    MHD_websocket_session_config_create ();
  int i;

  for (i = 0; i < BC_ROUNDS; i++)
  {
    struct MHD_WebSocketStream *ws;
    struct MHD_WebSocketSession *s;
    struct MHD_WebSocketChunk ch[2];

    if ((MHD_WEBSOCKET_STATUS_OK != MHD_websocket_stream_init (&ws, 0, 0))
        || (MHD_WEBSOCKET_STATUS_OK
            != MHD_websocket_stream_enable_deflate (ws, deflate_nct, -1, 0, 0))
        || (MHD_WEBSOCKET_STATUS_OK
            != MHD_websocket_session_create (&s, ws, cfg, NULL, 0)))
    {
      job->failures++;
      continue;
    }
    if ((MHD_WEBSOCKET_SEND_OK
         != MHD_websocket_session_send_broadcast (s, job->bc[i]))
        || (1 != MHD_websocket_session_pending (s, ch, 2)))
      job->failures++;
    else
    {
      job->packed[i] = ch[0].data;
      MHD_websocket_session_sent (s, ch[0].len / 2, 1);
    }
    MHD_websocket_session_free (s);
  }
  MHD_websocket_session_config_free (cfg);
  return NULL;
}

START_TEST (test_broadcast_across_threads)
{
  struct bc_job jobs[BC_THREADS];
  pthread_t th[BC_THREADS];
  char msg[3000];
  int i;
  int t;

  for (i = 0; i < (int) sizeof (msg); i++)
    msg[i] = (char) ('a' + (i * 7) % 13);
  memset (jobs, 0, sizeof (jobs));
  for (i = 0; i < BC_ROUNDS; i++)
  {
    struct MHD_WebSocketBroadcast *bc;

    ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                      MHD_websocket_broadcast_create (&bc, 0, msg, sizeof (msg),
                                                      bc_malloc, bc_free));
    for (t = 0; t < BC_THREADS; t++)
      jobs[t].bc[i] = bc;
  }
  for (t = 0; t < BC_THREADS; t++)
    ck_assert_int_eq (0, pthread_create (&th[t], NULL, bc_thread, &jobs[t]));
  for (t = 0; t < BC_THREADS; t++)
    ck_assert_int_eq (0, pthread_join (th[t], NULL));
  for (t = 0; t < BC_THREADS; t++)
    ck_assert_int_eq (0, jobs[t].failures);
  for (i = 0; i < BC_ROUNDS; i++)
  {
    /* One compressed frame per broadcast, whichever thread made it; a
       session that asked while another thread was making it got the
       plain frame, which is as right. */
    const char *packed = NULL;

    for (t = 0; t < BC_THREADS; t++)
    {
      if (0 == (jobs[t].packed[i][0] & 0x40))
        continue;
      if (NULL == packed)
        packed = jobs[t].packed[i];
      ck_assert_ptr_eq (packed, jobs[t].packed[i]);
    }
    ck_assert_ptr_nonnull (packed);
    /* The sessions' references are gone: the plain and the packed
       frame and the broadcast itself remain. */
    MHD_websocket_broadcast_release (jobs[0].bc[i]);
  }
  /* Every reference was dropped exactly once: all freed. */
  ck_assert_int_eq (0, bc_live);
}
END_TEST

/* ------------------------------------------------------------ variants */

START_TEST (test_want_fragments)
{
  unsigned char in[64];
  size_t n = 0;

  fx_open (MHD_WEBSOCKET_FLAG_SERVER | MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS, NULL,
           0);
  n += cframe (in + n, 0x01, "ab", 2);
  n += cframe (in + n, 0x89, "", 0);
  n += cframe (in + n, 0x00, "cd", 2);
  n += cframe (in + n, 0x80, "ef", 2);
  fx_receive (in, n, 1);
  ck_assert_uint_eq (4, F.nmsgs);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_TEXT_FIRST_FRAGMENT, F.types[0]);
  ck_assert_str_eq ("ab", F.msgs[0]);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_PING_FRAME, F.types[1]);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_TEXT_NEXT_FRAGMENT, F.types[2]);
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_TEXT_LAST_FRAGMENT, F.types[3]);
  ck_assert_str_eq ("ef", F.msgs[3]);
  ck_assert_uint_eq (2, fx_flush (0, 2));
}
END_TEST

START_TEST (test_deflate_echo)
{
  static const char answer[] = "permessage-deflate";
  struct MHD_WebSocketStream *client;
  char *frame;
  size_t frame_len;
  char msg[1000];
  unsigned char in[2048];
  struct tu_result r;
  int k;

  memset (msg, 'z', sizeof (msg));
  F.echo = 1;
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, answer, 0);
  ck_assert_int_eq (
    MHD_WEBSOCKET_STATUS_OK,
    MHD_websocket_stream_init2 (&client, MHD_WEBSOCKET_FLAG_CLIENT, 0, malloc,
                                realloc, free, NULL, tu_rng));
  ck_assert_int_eq (
    MHD_WEBSOCKET_STATUS_OK,
    MHD_websocket_stream_enable_deflate (client, answer, -1, 0, 0));
  /* Two compressed messages: the second uses the first's context. */
  for (k = 0; k < 2; k++)
  {
    ck_assert_int_eq (
      MHD_WEBSOCKET_STATUS_OK,
      MHD_websocket_encode_text (client, msg, sizeof (msg),
                                 MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame,
                                 &frame_len, NULL));
    ck_assert_uint_lt (frame_len, sizeof (in));
    memcpy (in, frame, frame_len);
    MHD_websocket_free (client, frame);
    fx_receive (in, frame_len, 1);
  }
  MHD_websocket_stream_free (client);
  ck_assert_uint_eq (2, F.nmsgs);
  ck_assert_uint_eq (sizeof (msg), F.lens[1]);
  (void) fx_flush (3, 2);
  ck_assert (0 != (F.out[0] & 0x40));
  ck_assert_uint_lt (F.out_len, 200);
  peer_decode (&r, answer);
  ck_assert_uint_eq (2, r.count);
  expect_event (&r, 1, MHD_WEBSOCKET_STATUS_TEXT_FRAME, msg, sizeof (msg));
  tu_result_free (&r);
}
END_TEST

START_TEST (test_deflate_takeover_hard_bound_uses_worst_case)
{
  char msg[500];

  memset (msg, 'w', sizeof (msg));
  fx_set (MHD_WEBSOCKET_SESSION_OPTION_SOFT_BOUND, 100);
  fx_set (MHD_WEBSOCKET_SESSION_OPTION_HARD_BOUND, 520);
  fx_set (MHD_WEBSOCKET_SESSION_OPTION_CLOSE_ON_HARD_BOUND, 0);
  fx_open (MHD_WEBSOCKET_FLAG_SERVER, "permessage-deflate", 0);
  /* Compressed it would be tiny, but a frame once compressed with
     context must go: it is judged at its worst size. */
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_REFUSED,
                    MHD_websocket_session_send_text (F.s, msg, sizeof (msg)));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, msg, 400));
  ck_assert_uint_lt (MHD_websocket_session_queued (F.s), 100);
}
END_TEST

START_TEST (test_client_session_masks)
{
  struct MHD_WebSocketStream *ws;
  struct MHD_WebSocketBroadcast *bc;
  unsigned int seed = 1;
  struct MHD_WebSocketStream *srv;
  size_t off = 0;
  int got = 0;

  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                    MHD_websocket_stream_init2 (&ws, MHD_WEBSOCKET_FLAG_CLIENT,
                                                0, tu_malloc, tu_realloc,
                                                tu_free, &seed, tu_rng));
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                    MHD_websocket_session_create (&F.s, ws, F.cfg, &F, 0));
  ck_assert_int_eq (
    MHD_WEBSOCKET_STATUS_OK,
    MHD_websocket_broadcast_create (&bc, 0, "shared", 6, NULL, NULL));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_text (F.s, "hi", 2));
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_send_broadcast (F.s, bc));
  MHD_websocket_broadcast_release (bc);
  ck_assert_int_eq (MHD_WEBSOCKET_SEND_OK,
                    MHD_websocket_session_close (F.s, 1000, NULL));
  (void) fx_flush (0, 1);
  /* A server stream accepts only masked frames. */
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_OK,
                    MHD_websocket_stream_init (&srv, 0, 0));
  while (off < F.out_len)
  {
    size_t used;
    char *p;
    size_t plen;
    int st = MHD_websocket_decode (srv, (const char *) F.out + off,
                                   F.out_len - off, &used, &p, &plen);

    off += used;
    ck_assert_int_gt (st, 0);
    got++;
    if (1 == got)
      ck_assert_mem_eq ("hi", p, 2);
    if (2 == got)
      ck_assert_mem_eq ("shared", p, 6);
    MHD_websocket_free (srv, p);
  }
  ck_assert_int_eq (3, got);
  MHD_websocket_stream_free (srv);
}
END_TEST

START_TEST (test_config_rejects_bad_values)
{
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_PARAMETER_ERROR,
                    MHD_websocket_session_config_set (
                      F.cfg, MHD_WEBSOCKET_SESSION_OPTION_MAX_PONGS_QUEUED, 0));
  ck_assert_int_eq (
    MHD_WEBSOCKET_STATUS_PARAMETER_ERROR,
    MHD_websocket_session_config_set (
      F.cfg, MHD_WEBSOCKET_SESSION_OPTION_EMPTY_CLOSE_CODE, 1005));
  ck_assert_int_eq (
    MHD_WEBSOCKET_STATUS_PARAMETER_ERROR,
    MHD_websocket_session_config_set (
      F.cfg, MHD_WEBSOCKET_SESSION_OPTION_CLOSE_ON_HARD_BOUND, 2));
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_PARAMETER_ERROR,
                    MHD_websocket_session_config_set (
                      F.cfg, (enum MHD_WEBSOCKET_SESSION_OPTION) 99, 1));
  ck_assert_int_eq (MHD_WEBSOCKET_STATUS_PARAMETER_ERROR,
                    MHD_websocket_session_create (&F.s, NULL, F.cfg, &F, 0));
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *
session_suite (void)
{
  Suite *s = suite_create ("session");
  TCase *tc;

  tc = tcase_create ("input and output");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_input_every_split);
  tcase_add_test (tc, test_partial_writes_every_size);
  tcase_add_loop_test (tc, test_pong_never_inside_a_frame, 1, 304);
  tcase_add_test (tc, test_handed_out_frames_keep_their_place);
  suite_add_tcase (s, tc);

  tc = tcase_create ("pings");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_pong_cap_under_ping_flood);
  tcase_add_test (tc, test_unsolicited_pong_is_legal);
  tcase_add_test (tc, test_app_ping_goes_ahead_of_data);
  suite_add_tcase (s, tc);

  tc = tcase_create ("closing");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_peer_close_code_alone);
  tcase_add_test (tc, test_peer_close_reason_echoed);
  tcase_add_test (tc, test_peer_close_empty);
  tcase_add_test (tc, test_peer_close_empty_close_code);
  tcase_add_test (tc, test_peer_close_undefined_code);
  tcase_add_test (tc, test_peer_close_after_queued_data);
  tcase_add_test (tc, test_app_close_then_peer_answers);
  tcase_add_test (tc, test_app_close_then_eof);
  tcase_add_test (tc, test_eof_with_close_unsent);
  tcase_add_loop_test (tc, test_eof_without_close, 0, 2);
  tcase_add_loop_test (tc, test_protocol_error_closes_1002, 0, 2);
  tcase_add_test (tc, test_bad_utf8_closes_1007);
  suite_add_tcase (s, tc);

  tc = tcase_create ("timers");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_idle_ping_deadlines);
  tcase_add_test (tc, test_idle_pings_do_not_pile_up);
  tcase_add_test (tc, test_idle_timeout_closes_1001);
  tcase_add_test (tc, test_close_timeout);
  suite_add_tcase (s, tc);

  tc = tcase_create ("bounds");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_soft_bound_exactly);
  tcase_add_test (tc, test_hard_bound_exactly);
  tcase_add_test (tc, test_hard_bound_closes_1008);
  tcase_add_test (tc, test_deflate_takeover_hard_bound_uses_worst_case);
  suite_add_tcase (s, tc);

  tc = tcase_create ("memory");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 120);
  tcase_add_loop_test (tc, test_failure_at_every_allocation, 0, 2);
  suite_add_tcase (s, tc);

  tc = tcase_create ("broadcast");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_broadcast_shares_one_frame);
  tcase_add_test (tc, test_broadcast_compressed_only_where_it_fits);
  tcase_add_test (tc, test_broadcast_to_many_mixed_sessions);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_broadcast_across_threads);
  suite_add_tcase (s, tc);

  tc = tcase_create ("variants");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_want_fragments);
  tcase_add_test (tc, test_deflate_echo);
  tcase_add_test (tc, test_client_session_masks);
  tcase_add_test (tc, test_config_rejects_bad_values);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (session_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (failed > 0) ? EXIT_FAILURE : EXIT_SUCCESS;
}
