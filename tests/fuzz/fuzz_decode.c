/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file fuzz_decode.c
 * @brief libFuzzer harness for MHD_websocket_decode.
 *
 * Input layout (8-byte prefix, then the wire bytes):
 *   [0] bit0 CLIENT, bit1 WANT_FRAGMENTS, bit2 GENERATE_CLOSE_FRAMES_ON_ERROR
 *   [1] bit7 set: max_payload_size = [1] & 0x7F, else 0 (no limit)
 *   [2] split mode % 3: 0 one byte per call, 1 random chunks, 2 whole
 *   [3] seed for chunk sizes and the client RNG
 *   [4..7] little-endian mask: allocation n (< 32) fails when bit n is set
 *
 * The input is decoded twice: whole with a reliable allocator, then split
 * with the failing one; both runs must give the same events.  No single
 * allocation may exceed twice the bytes handed over so far plus 64 KiB.
 */
#include "fuzz_common.h"

#define FZ_PREFIX 8

struct fz_event
{
  int status;
  size_t end;
  size_t len;
  unsigned char *data;
};

struct fz_run
{
  struct fz_event *ev;
  size_t n;
};

static int
is_known_status (int s)
{
  switch (s)
  {
  case MHD_WEBSOCKET_STATUS_OK:
  case MHD_WEBSOCKET_STATUS_TEXT_FRAME:
  case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
  case MHD_WEBSOCKET_STATUS_CLOSE_FRAME:
  case MHD_WEBSOCKET_STATUS_PING_FRAME:
  case MHD_WEBSOCKET_STATUS_PONG_FRAME:
  case MHD_WEBSOCKET_STATUS_TEXT_FIRST_FRAGMENT:
  case MHD_WEBSOCKET_STATUS_BINARY_FIRST_FRAGMENT:
  case MHD_WEBSOCKET_STATUS_TEXT_NEXT_FRAGMENT:
  case MHD_WEBSOCKET_STATUS_BINARY_NEXT_FRAGMENT:
  case MHD_WEBSOCKET_STATUS_TEXT_LAST_FRAGMENT:
  case MHD_WEBSOCKET_STATUS_BINARY_LAST_FRAGMENT:
  case MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR:
  case MHD_WEBSOCKET_STATUS_STREAM_BROKEN:
  case MHD_WEBSOCKET_STATUS_MEMORY_ERROR:
  case MHD_WEBSOCKET_STATUS_PARAMETER_ERROR:
  case MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED:
  case MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR:
  case MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER:
    return 1;
  default:
    return 0;
  }
}

static int
is_fragment_status (int s)
{
  return (s & 0x70) != 0;
}

static int
is_text_status (int s)
{
  return (s & 0x0F) == MHD_WEBSOCKET_STATUS_TEXT_FRAME;
}

static int
is_close_code_allowed (unsigned int code)
{
  if (code < 1000)
    return 0;
  if ((code >= 1004) && (code <= 1006))
    return 0;
  if ((code >= 1015) && (code <= 2999))
    return 0;
  return 1;
}

/* The close frame handed back with an error under
   GENERATE_CLOSE_FRAMES_ON_ERROR. */
static void
check_error_close_frame (int status, int client, const unsigned char *f,
                         size_t flen)
{
  size_t plen;
  size_t hl = client ? 6 : 2;
  unsigned int code;
  unsigned int want;
  unsigned char p0;
  unsigned char p1;

  FZ_CHECK (flen >= 2);
  FZ_CHECK (f[0] == 0x88);
  FZ_CHECK ((f[1] & 0x80) == (client ? 0x80 : 0));
  plen = f[1] & 0x7F;
  FZ_CHECK (plen <= 125 && plen >= 2);
  FZ_CHECK (flen == hl + plen);
  p0 = f[hl];
  p1 = f[hl + 1];
  if (client)
  {
    p0 ^= f[2];
    p1 ^= f[3];
  }
  code = ((unsigned int) p0 << 8) | p1;
  if (status == MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR)
    want = 1007;
  else if (status == MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED)
    want = 1009;
  else
    want = 1002;
  FZ_CHECK (code == want);
}

static void
push_event (struct fz_run *r, int status, size_t end, const char *p, size_t len)
{
  struct fz_event *e = &r->ev[r->n++];
  e->status = status;
  e->end = end;
  e->len = len;
  e->data = NULL;
  if (len > 0)
  {
    e->data = malloc (len);
    FZ_CHECK (NULL != e->data);
    memcpy (e->data, p, len);
  }
}

static void
free_run (struct fz_run *r)
{
  size_t i;
  for (i = 0; i < r->n; i++)
    free (r->ev[i].data);
  free (r->ev);
}

static void
decode_run (const unsigned char *buf, size_t len, int flags, size_t max,
            int mode, uint32_t seed, uint32_t fail_mask, struct fz_run *out)
{
  struct MHD_WebSocketStream *ws = NULL;
  const int client = flags & MHD_WEBSOCKET_FLAG_CLIENT;
  const int want_frag = flags & MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS;
  const int gen = flags & MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR;
  uint32_t split_rng = seed * 2654435761u + 1;
  size_t pos = 0;
  size_t calls = 0;
  int r;

  out->ev = calloc (len + 2, sizeof (struct fz_event));
  FZ_CHECK (NULL != out->ev);
  out->n = 0;
  fz_live = 0;
  fz_alloc_reset (fail_mask);
  fz_seed (seed);

  /* The stream object comes from the C library (as in the original):
     init succeeds whatever the callbacks do, and costs them nothing. */
  r = MHD_websocket_stream_init2 (&ws, flags, max, fz_malloc, fz_realloc,
                                  fz_free, NULL, fz_rng_cb);
  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == r);
  FZ_CHECK (NULL != ws);
  FZ_CHECK (0 == fz_live);

  while (pos < len)
  {
    size_t cend;
    if (0 == mode)
      cend = pos + 1;
    else if (1 == mode)
    {
      split_rng ^= split_rng << 13;
      split_rng ^= split_rng >> 17;
      split_rng ^= split_rng << 5;
      cend = pos + 1 + (split_rng % 40);
    }
    else
      cend = len;
    if (cend > len)
      cend = len;

    while (pos < cend)
    {
      size_t given = cend - pos;
      size_t rd = 12345;
      char *pl = (char *) 1;
      size_t pl_len = 54321;
      int failed_before = fz_failed;

      FZ_CHECK (++calls <= 4 * len + 16);
      /* The decoder may not allocate for bytes it has not received. */
      fz_alloc_limit = 2 * (pos + given) + 65536;
      r = MHD_websocket_decode (ws, (const char *) buf + pos, given, &rd, &pl,
                                &pl_len);
      FZ_CHECK (is_known_status (r));
      FZ_CHECK (rd <= given);

      if (MHD_WEBSOCKET_STATUS_MEMORY_ERROR == r)
      {
        /* Only an allocation that failed in this very call explains it. */
        FZ_CHECK (fz_failed && ! failed_before);
        FZ_CHECK (MHD_WEBSOCKET_VALIDITY_INVALID
                  != MHD_websocket_stream_is_valid (ws));
        if (NULL != pl)
          MHD_websocket_free (ws, pl);
        FZ_CHECK (NULL == pl && 0 == pl_len);
        pos += rd; /* the retry passes the same remaining bytes */
        continue;
      }
      if (MHD_WEBSOCKET_STATUS_OK == r)
      {
        FZ_CHECK (rd == given);
        FZ_CHECK (NULL == pl && 0 == pl_len);
        pos += rd;
        continue;
      }
      if (r > 0)
      {
        FZ_CHECK (rd > 0);
        FZ_CHECK ((NULL == pl) == (0 == pl_len));
        if (NULL != pl)
          FZ_CHECK (0 == pl[pl_len]);
        if (! want_frag)
          FZ_CHECK (! is_fragment_status (r));
        if (r < 8 || is_fragment_status (r))
        {
          if (0 != max)
            FZ_CHECK (pl_len <= max);
          if (is_text_status (r))
            FZ_CHECK (fz_utf8_valid (pl, pl_len));
        }
        else
        {
          FZ_CHECK (pl_len <= 125);
        }
        if (MHD_WEBSOCKET_STATUS_CLOSE_FRAME == r)
        {
          FZ_CHECK (pl_len != 1);
          if (pl_len >= 2)
          {
            unsigned int code = ((unsigned int) (unsigned char) pl[0] << 8)
                                | (unsigned char) pl[1];
            FZ_CHECK (is_close_code_allowed (code));
            FZ_CHECK (fz_utf8_valid (pl + 2, pl_len - 2));
          }
          FZ_CHECK (MHD_WEBSOCKET_VALIDITY_ONLY_VALID_FOR_CONTROL_FRAMES
                    == MHD_websocket_stream_is_valid (ws));
        }
        else
        {
          FZ_CHECK (MHD_WEBSOCKET_VALIDITY_INVALID
                    != MHD_websocket_stream_is_valid (ws));
        }
        pos += rd;
        push_event (out, r, pos, pl, pl_len);
        if (NULL != pl)
          FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == MHD_websocket_free (ws, pl));
        continue;
      }

      /* Negative: only the three protocol failures may come back here. */
      FZ_CHECK (MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR == r
                || MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR == r
                || MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED == r);
      FZ_CHECK (MHD_WEBSOCKET_VALIDITY_INVALID
                == MHD_websocket_stream_is_valid (ws));
      if (gen)
      {
        if (NULL == pl)
          FZ_CHECK (fz_failed && ! failed_before && 0 == pl_len);
        else
          check_error_close_frame (r, client, (const unsigned char *) pl,
                                   pl_len);
      }
      else
        FZ_CHECK (NULL == pl && 0 == pl_len);
      if (NULL != pl)
        MHD_websocket_free (ws, pl);
      pos += rd;
      push_event (out, r, pos, NULL, 0);
      {
        /* Whatever comes next, the stream stays broken. */
        static const char dummy[2] = { (char) 0x81, 0 };
        const char *nb = (pos < len) ? (const char *) buf + pos : dummy;
        size_t nl = (pos < len) ? len - pos : sizeof (dummy);
        rd = 777;
        r = MHD_websocket_decode (ws, nb, nl, &rd, &pl, &pl_len);
        FZ_CHECK (MHD_WEBSOCKET_STATUS_STREAM_BROKEN == r);
        FZ_CHECK (rd <= nl);
        if (NULL != pl)
          MHD_websocket_free (ws, pl);
      }
      pos = len;
      break;
    }
  }
  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == MHD_websocket_stream_free (ws));
  if (0 != fz_live)
  {
    fprintf (stderr, "leak: %ld live blocks after stream_free\n", fz_live);
    abort ();
  }
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  int flags;
  size_t max;
  int mode;
  uint32_t seed;
  uint32_t fail_mask;
  struct fz_run whole;
  struct fz_run split;
  size_t i;

  if (size < FZ_PREFIX)
    return 0;
  flags = data[0] & 7;
  max = (data[1] & 0x80) ? (size_t) (data[1] & 0x7F) : 0;
  mode = data[2] % 3;
  seed = data[3];
  fail_mask = (uint32_t) data[4] | ((uint32_t) data[5] << 8)
              | ((uint32_t) data[6] << 16) | ((uint32_t) data[7] << 24);
  data += FZ_PREFIX;
  size -= FZ_PREFIX;

  decode_run (data, size, flags, max, 2, seed, 0, &whole);
  decode_run (data, size, flags, max, mode, seed, fail_mask, &split);

  if (whole.n != split.n)
  {
    fprintf (stderr, "event count differs: whole %zu, split %zu\n", whole.n,
             split.n);
    abort ();
  }
  for (i = 0; i < whole.n; i++)
  {
    const struct fz_event *a = &whole.ev[i];
    const struct fz_event *b = &split.ev[i];
    if ((a->status != b->status) || (a->end != b->end) || (a->len != b->len)
        || ((a->len > 0) && (0 != memcmp (a->data, b->data, a->len))))
    {
      fprintf (stderr,
               "event %zu differs: whole status %d end %zu len %zu, "
               "split status %d end %zu len %zu\n",
               i, a->status, a->end, a->len, b->status, b->end, b->len);
      abort ();
    }
  }
  free_run (&whole);
  free_run (&split);
  return 0;
}
