/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file fuzz_inflate.c
 * @brief libFuzzer harness for the permessage-deflate receive path.
 *
 * The fuzzer writes the compressed payloads; the harness wraps them in
 * well-formed frames (RSV1 on the first, masked in server mode, cut into
 * fragments) so that every input reaches the inflater.
 *
 * Input layout (8-byte prefix, then the messages):
 *   [0] bit0 CLIENT, bit1 WANT_FRAGMENTS, bit2 GENERATE_CLOSE_FRAMES_ON_ERROR,
 *       bit3 binary (else text), bit4 server_no_context_takeover,
 *       bit5 client_no_context_takeover, bit6 some messages uncompressed
 *   [1] max_payload_size = 1 + [1] * 1024 (bombs meet a limit)
 *   [2] low nibble: the peer's window bits 8 + n % 8; high: split mode % 3
 *       (0 one byte per call, 1 random chunks, 2 whole)
 *   [3] seed for fragment cuts, chunk sizes and the client RNG
 *   [4..7] little-endian mask: allocation n (< 32) fails when bit n is set
 *   then messages: 2-byte little-endian length, that many payload bytes
 *   (the last message takes what is left)
 *
 * Invariants: the whole-input run and the split run with failing
 * allocations give the same events; a delivered message equals what a
 * zlib reference inflater (same window, same context rules) makes of the
 * payload with 00 00 ff ff appended, and a payload the reference takes
 * cleanly is delivered; no allocation exceeds the limit plus 64 KiB; no
 * zlib state stays between messages, and without context takeover no
 * history either; nothing leaks.
 */
#include "fuzz_common.h"

#include <zlib.h>

#define FZ_PREFIX 8
#define MAX_MSGS 64

struct msg
{
  const unsigned char *p;
  size_t len;
  int compressed;
};

struct ev
{
  int status;
  size_t len;
  unsigned char *data;
};

struct evs
{
  struct ev ev[4 * MAX_MSGS + 8];
  size_t n;
};

/** Frames the messages into @a out; returns its length. */
static size_t
build_wire (const struct msg *m, size_t nmsg, int client, int binary,
            uint32_t seed, unsigned char *out)
{
  size_t n = 0;
  size_t i;
  uint32_t r = seed | 1;

  for (i = 0; i < nmsg; i++)
  {
    size_t done = 0;
    int first = 1;
    do
    {
      size_t part;
      size_t k;
      unsigned char key[4] = { 0x12, 0x34, 0x56, 0x78 };
      unsigned char b0;
      r ^= r << 13;
      r ^= r >> 17;
      r ^= r << 5;
      part = m[i].len - done;
      if (part > 65535)
        part = 65535;
      if ((r & 3) == 0 && part > 1)
        part = 1 + (r >> 8) % part; /* a fragment */
      b0 = (unsigned char) ((first ? (binary ? 2 : 1) : 0)
                            | ((first && m[i].compressed) ? 0x40 : 0)
                            | ((done + part == m[i].len) ? 0x80 : 0));
      out[n++] = b0;
      if (part < 126)
        out[n++] = (unsigned char) part;
      else
      {
        out[n++] = 126;
        out[n++] = (unsigned char) (part >> 8);
        out[n++] = (unsigned char) part;
      }
      if (! client)
      {
        out[n - ((part < 126) ? 1 : 3)] |= 0x80;
        key[0] = (unsigned char) r;
        memcpy (out + n, key, 4);
        n += 4;
      }
      for (k = 0; k < part; k++)
        out[n + k] =
          (unsigned char) (m[i].p[done + k] ^ (client ? 0 : key[k & 3]));
      n += part;
      done += part;
      first = 0;
    } while (done < m[i].len);
  }
  return n;
}

static void
decode_all (const unsigned char *wire, size_t len, int flags, size_t max,
            const char *agreed, int mode, uint32_t seed, uint32_t fail_mask,
            int rx_reset, struct evs *out)
{
  struct MHD_WebSocketStream *ws = NULL;
  size_t pos = 0;
  uint32_t split = seed * 2654435761u + 7;
  int r;
  int enabled = 0;

  out->n = 0;
  fz_live = 0;
  fz_alloc_reset (fail_mask);
  fz_seed (seed);
  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK
            == MHD_websocket_stream_init2 (&ws, flags, max, fz_malloc,
                                           fz_realloc, fz_free, NULL,
                                           fz_rng_cb));
  while (! enabled)
  {
    r = MHD_websocket_stream_enable_deflate (ws, agreed, -1, 0, 0);
    FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == r
              || MHD_WEBSOCKET_STATUS_MEMORY_ERROR == r);
    enabled = MHD_WEBSOCKET_STATUS_OK == r;
  }
  /* Inflated bytes are bounded by the limit; zlib's own state (the
     window, 32 KiB at most) comes on top. */
  fz_alloc_limit = max + 2 + 65536;
  while (pos < len)
  {
    size_t end;
    if (0 == mode)
      end = pos + 1;
    else if (1 == mode)
    {
      split ^= split << 13;
      split ^= split >> 17;
      split ^= split << 5;
      end = pos + 1 + split % 300;
    }
    else
      end = len;
    if (end > len)
      end = len;
    for (;;)
    {
      size_t rd = 999;
      char *pl = (char *) 1;
      size_t pl_len = 999;
      int failed_before = fz_failed;

      r = MHD_websocket_decode (ws, (const char *) wire + pos, end - pos, &rd,
                                &pl, &pl_len);
      FZ_CHECK (rd <= end - pos);
      pos += rd;
      if (MHD_WEBSOCKET_STATUS_MEMORY_ERROR == r)
      {
        FZ_CHECK (fz_failed && ! failed_before);
        FZ_CHECK (NULL == pl && 0 == pl_len);
        continue; /* retried, even with nothing left: the end may wait */
      }
      if (MHD_WEBSOCKET_STATUS_OK == r)
      {
        FZ_CHECK (pos == end);
        break;
      }
      FZ_CHECK (out->n < sizeof (out->ev) / sizeof (out->ev[0]));
      out->ev[out->n].status = r;
      out->ev[out->n].len = (r > 0) ? pl_len : 0;
      out->ev[out->n].data = NULL;
      if ((r > 0) && (0 != pl_len))
      {
        FZ_CHECK (pl_len <= max);
        FZ_CHECK (0 == pl[pl_len]);
        if ((r & 0x0F) == MHD_WEBSOCKET_STATUS_TEXT_FRAME)
          FZ_CHECK (fz_utf8_valid (pl, pl_len));
        out->ev[out->n].data = malloc (pl_len);
        FZ_CHECK (NULL != out->ev[out->n].data);
        memcpy (out->ev[out->n].data, pl, pl_len);
      }
      out->n++;
      if (NULL != pl)
        MHD_websocket_free (ws, pl);
      if (r < 0)
      {
        FZ_CHECK (MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR == r
                  || MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR == r
                  || MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED == r);
        pos = len;
        break;
      }
      /* A whole message out: no zlib state remains, only the
         compression settings and, with context takeover, the history. */
      if ((r & 0x30) == 0)
        FZ_CHECK (fz_live == 1 || (! rx_reset && fz_live == 2));
      if (pos == end)
        break;
    }
  }
  fz_alloc_limit = 0;
  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == MHD_websocket_stream_free (ws));
  FZ_CHECK (0 == fz_live);
}

static void
free_evs (struct evs *e)
{
  size_t i;
  for (i = 0; i < e->n; i++)
    free (e->ev[i].data);
}

/**
 * The reference: zlib on its own, message by message.  Returns the
 * number of messages it takes cleanly before the first it does not
 * (corrupt, truncated, over the limit, bad UTF-8, or BFINAL, which the
 * library handles by ignoring the rest and is left unjudged here), and
 * their outputs.
 */
static size_t
reference (const struct msg *m, size_t nmsg, int bits, int rx_reset, size_t max,
           int text, unsigned char **outs, size_t *out_lens)
{
  z_stream z;
  size_t i;
  size_t ok = 0;
  unsigned char *buf = malloc (max + 1);

  FZ_CHECK (NULL != buf);
  memset (&z, 0, sizeof (z));
  FZ_CHECK (Z_OK == inflateInit2 (&z, -(bits < 9 ? 9 : bits)));
  for (i = 0; i < nmsg; i++)
  {
    unsigned char *in = malloc (m[i].len + 4);
    int ret;
    size_t got;
    int clean;

    FZ_CHECK (NULL != in);
    if (! m[i].compressed)
    {
      outs[i] = malloc (m[i].len + 1);
      FZ_CHECK (NULL != outs[i]);
      memcpy (outs[i], m[i].p, m[i].len);
      out_lens[i] = m[i].len;
      free (in);
      if ((m[i].len > max) || (text && ! fz_utf8_valid (m[i].p, m[i].len)))
        break;
      ok++;
      continue;
    }
    memcpy (in, m[i].p, m[i].len);
    memcpy (in + m[i].len, "\x00\x00\xff\xff", 4);
    z.next_in = in;
    z.avail_in = (uInt) (m[i].len + 4);
    z.next_out = buf;
    z.avail_out = (uInt) (max + 1);
    ret = Z_OK;
    got = 0;
    /* One output byte a call: zlib then judges every distance against
       the window (within one call's output it accepts any). */
    while ((Z_OK == ret) && (got <= max)
           && ((0 != z.avail_in) || (0 == z.avail_out)))
    {
      z.next_out = buf + got;
      z.avail_out = 1;
      ret = inflate (&z, Z_BLOCK);
      got += 1 - z.avail_out;
      if ((Z_BUF_ERROR == ret) && (0 != z.avail_out))
        break;
    }
    clean = ((Z_OK == ret) || (Z_BUF_ERROR == ret)) && (0 == z.avail_in)
            && (got <= max) && (0 != (z.data_type & 128))
            && (0 == (z.data_type & 64));
    free (in);
    if (! clean || (text && ! fz_utf8_valid (buf, got)))
      break;
    outs[i] = malloc (got + 1);
    FZ_CHECK (NULL != outs[i]);
    memcpy (outs[i], buf, got);
    out_lens[i] = got;
    ok++;
    if (rx_reset)
      FZ_CHECK (Z_OK == inflateReset (&z));
  }
  inflateEnd (&z);
  free (buf);
  return ok;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct msg m[MAX_MSGS];
  size_t nmsg = 0;
  size_t at = FZ_PREFIX;
  unsigned char *wire;
  size_t wire_len;
  int flags;
  int binary;
  int snct;
  int cnct;
  int bits;
  int mode;
  int rx_reset;
  size_t max;
  uint32_t seed;
  uint32_t fail_mask;
  char agreed[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
  struct evs whole;
  struct evs split;
  unsigned char *outs[MAX_MSGS];
  size_t out_lens[MAX_MSGS];
  size_t good;
  size_t whole_n;
  size_t i;
  size_t total = 0;

  if (size < FZ_PREFIX)
    return 0;
  flags = data[0] & 7;
  binary = 0 != (data[0] & 8);
  snct = 0 != (data[0] & 16);
  cnct = 0 != (data[0] & 32);
  max = 1 + (size_t) data[1] * 1024;
  bits = 8 + (data[2] & 15) % 8;
  mode = (data[2] >> 4) % 3;
  seed = data[3];
  fail_mask = (uint32_t) data[4] | ((uint32_t) data[5] << 8)
              | ((uint32_t) data[6] << 16) | ((uint32_t) data[7] << 24);
  while ((at < size) && (nmsg < MAX_MSGS))
  {
    size_t len = size - at;
    if ((len > 2) && (nmsg + 1 < MAX_MSGS))
    {
      size_t want = (size_t) data[at] | ((size_t) data[at + 1] << 8);
      at += 2;
      len = size - at;
      if (want < len)
        len = want;
    }
    m[nmsg].p = data + at;
    m[nmsg].len = len;
    /* bit6: every third message goes uncompressed, as RFC 7692 allows. */
    m[nmsg].compressed = ! ((data[0] & 64) && (nmsg % 3 == 2));
    total += len;
    at += len;
    nmsg++;
  }
  if (0 == nmsg)
    return 0;
  snprintf (agreed, sizeof (agreed), "permessage-deflate%s%s; %s=%d",
            snct ? "; server_no_context_takeover" : "",
            cnct ? "; client_no_context_takeover" : "",
            (flags & MHD_WEBSOCKET_FLAG_CLIENT) ? "server_max_window_bits"
                                                : "client_max_window_bits",
            bits);
  rx_reset = (flags & MHD_WEBSOCKET_FLAG_CLIENT) ? snct : cnct;
  /* At worst one fragment per byte, each with an 8-byte header. */
  wire = malloc (9 * total + 16 * nmsg + 16);
  FZ_CHECK (NULL != wire);
  wire_len =
    build_wire (m, nmsg, flags & MHD_WEBSOCKET_FLAG_CLIENT, binary, seed, wire);

  /* The reference first: where it rejects a message (corrupt, too big,
     bad text, BFINAL, or a distance beyond the agreed window, which zlib
     lets pass when the bytes are still in one call's output, so that the
     library may or may not see it depending on how bytes arrive), the
     runs are compared only up to that message. */
  memset (outs, 0, sizeof (outs));
  good = reference (m, nmsg, bits, rx_reset, max, ! binary, outs, out_lens);
  decode_all (wire, wire_len, flags, max, agreed, 2, seed, 0, rx_reset, &whole);
  decode_all (wire, wire_len, flags, max, agreed, mode, seed, fail_mask,
              rx_reset, &split);
  whole_n = whole.n;
  {
    size_t done_msgs = 0;
    size_t cut = 0;
    while ((cut < whole.n) && (done_msgs < good))
    {
      int st = whole.ev[cut].status;
      if ((st > 0) && (0 == (st & 0x30)))
        done_msgs++;
      cut++;
    }
    if (good < nmsg)
      whole.n = cut; /* beyond the cut the runs may part */
    else
      FZ_CHECK (whole.n == split.n);
  }
  FZ_CHECK (whole.n <= split.n);
  for (i = 0; i < whole.n; i++)
  {
    /* Data that is corrupt and also bad text (or too big) shows one or
       the other first depending on how zlib was fed: inflate reports a
       corrupt block at a point that depends on its input chunks. */
    if ((whole.ev[i].status < 0) && (split.ev[i].status < 0))
      continue;
    FZ_CHECK (whole.ev[i].status == split.ev[i].status);
    FZ_CHECK (whole.ev[i].len == split.ev[i].len);
    if (0 != whole.ev[i].len)
      FZ_CHECK (
        0 == memcmp (whole.ev[i].data, split.ev[i].data, whole.ev[i].len));
  }

  /* Against the reference, without fragments (one event per message). */
  if (0 == (flags & MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS))
  {
    for (i = 0; i < good; i++)
    {
      FZ_CHECK (i < whole.n);
      FZ_CHECK (whole.ev[i].status > 0);
      FZ_CHECK (whole.ev[i].len == out_lens[i]);
      if (0 != out_lens[i])
        FZ_CHECK (0 == memcmp (whole.ev[i].data, outs[i], out_lens[i]));
    }
  }
  for (i = 0; (i <= good) && (i < nmsg); i++)
    free (outs[i]); /* NULL where the reference stopped */
  whole.n = whole_n;
  free_evs (&whole);
  free_evs (&split);
  free (wire);
  return 0;
}
