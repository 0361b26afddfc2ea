/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file deflate.c
 * @brief permessage-deflate (RFC 7692) on a stream, with zlib.
 *
 * Receiving: the payload of a message that arrived with RSV1 goes
 * through one raw inflater; the 4 bytes `00 00 ff ff` that the sender
 * removed are fed at the message's end.  Output lands in the stream's
 * message buffer, is validated as text there, and is bounded by the
 * stream's payload limit: zlib is never given room for more than one
 * byte past the limit, so a "zip bomb" costs at most the limit.
 *
 * Sending: each message (or each fragment of a fragmented one) is
 * compressed with Z_SYNC_FLUSH straight into the frame buffer, which is
 * allocated before zlib runs: a failed allocation leaves the compression
 * context as it was, so MEMORY_ERROR never desynchronises the peers.
 *
 * Memory: zlib's state exists only while a message is being compressed
 * or decompressed.  Between messages, a side with context takeover keeps
 * just the bytes its LZ77 window reaches (a ring, struct ws_pmd_history)
 * and hands them to a fresh deflater or inflater as a preset dictionary
 * when the next message starts; the peer's window holds the same bytes,
 * so the streams stay in step.  An idle connection with 15-bit windows
 * both ways thus holds under 64 KiB (a live zlib pair would hold about
 * 300 KiB), at the price of hashing the window again for each message
 * sent.  zlib allocates through the stream's callbacks.  The inflater's
 * window is forced into existence when the inflater is created (zlib
 * would otherwise allocate it inside inflate(), where a failure is
 * final), so inflate() never allocates.
 */
#include "deflate.h"
#include "extension.h"
#include "mask.h"
#include "utf8.h"

#include <limits.h>
#include <string.h>
#include <zlib.h>

/**
 * The last bytes that went through one side's LZ77 window, oldest
 * first from @e start.  The buffer grows with the bytes seen, up to the
 * bytes kept, and only then wraps around.
 */
struct ws_pmd_history
{
  uint8_t *buf;
  size_t cap;
  size_t start;
  size_t len;
  /** How many bytes the window reaches; 0 without context takeover. */
  size_t keep;
};

/** The two halves of the compression state (see deflate.h). */
struct ws_pmd
{
  /* --- sending half: only the encoders touch it --- */
  /** The deflater, while a message is being sent; else NULL. */
  z_stream *tx;
  struct ws_pmd_history tx_hist;
  size_t tx_min_size;
  /** A fragmented message is being sent compressed. */
  bool tx_in_message;
  int tx_bits;
  /** zlib's level, or -1 for the library's choice by message size. */
  int tx_level;

  /* --- receiving half: only the decoder touches it --- */
  /** The inflater, while a message is being received; else NULL. */
  z_stream *rx;
  struct ws_pmd_history rx_hist;
  /** The peer ended its deflate stream (BFINAL) inside this message:
      the rest of the message is ignored, as after the end of any deflate stream. */
  bool rx_ended;
  int rx_bits;
  /** Bytes of the `00 00 ff ff` tail already inflated (MEMORY_ERROR). */
  uint8_t rx_tail_done;
};

/** zlib's deflate never reaches further back than its window less this
    (MIN_LOOKAHEAD in zlib's deflate.h); older bytes need not be kept. */
#define WS_PMD_ZLIB_LOOKAHEAD 262

static const uint8_t sync_tail[4] = { 0x00, 0x00, 0xff, 0xff };

static voidpf
pmd_zalloc (voidpf opaque, uInt items, uInt size)
{
  const struct MHD_WebSocketStream *ws = opaque;

  if ((0 != size) && (items > SIZE_MAX / size))
    return Z_NULL;
  return ws->malloc_cb ((size_t) items * size);
}

static void
pmd_zfree (voidpf opaque, voidpf address)
{
  const struct MHD_WebSocketStream *ws = opaque;

  ws_free (ws, address);
}

/** A zeroed z_stream that allocates through the stream's callbacks. */
static z_stream *
zstream_new (struct MHD_WebSocketStream *ws)
{
  z_stream *z = ws_malloc (ws, sizeof (*z));

  if (NULL == z)
    return NULL;
  memset (z, 0, sizeof (*z));
  z->zalloc = pmd_zalloc;
  z->zfree = pmd_zfree;
  z->opaque = ws;
  return z;
}

/* ------------------------------------------------------------ history */

/**
 * Makes sure @a h can take @a more bytes without losing any that its
 * window still reaches.  Called before zlib runs, so that a failure
 * changes nothing.
 */
static bool
hist_reserve (struct MHD_WebSocketStream *ws, struct ws_pmd_history *h,
              size_t more)
{
  size_t want;
  size_t cap;
  uint8_t *buf;

  if (more >= h->keep - h->len)
    want = h->keep;
  else
    want = h->len + more;
  if (want <= h->cap)
    return true;
  /* Not full yet, so not wrapped: plain growth keeps the order. */
  cap = (h->cap > h->keep / 2) ? h->keep : 2 * h->cap;
  if (cap < want)
    cap = want;
  buf = (NULL == h->buf) ? ws->malloc_cb (cap) : ws->realloc_cb (h->buf, cap);
  if (NULL == buf)
    return false;
  h->buf = buf;
  h->cap = cap;
  return true;
}

/** Appends @a n bytes that went through the window (room reserved). */
static void
hist_append (struct ws_pmd_history *h, const uint8_t *data, size_t n)
{
  size_t end;
  size_t first;

  /* Nothing to add (data may then be NULL, and the buffer unmade). */
  if ((0 == h->keep) || (0 == n))
    return;
  if (n >= h->cap)
  {
    memcpy (h->buf, data + n - h->cap, h->cap);
    h->start = 0;
    h->len = h->cap;
    return;
  }
  end = (h->start + h->len) % h->cap;
  first = (n < h->cap - end) ? n : h->cap - end;
  memcpy (h->buf + end, data, first);
  memcpy (h->buf, data + first, n - first);
  if (h->len + n > h->cap)
  {
    h->start = (h->start + h->len + n - h->cap) % h->cap;
    h->len = h->cap;
  }
  else
    h->len += n;
}

/**
 * Gives the history to a fresh zlib stream as its dictionary, in at
 * most two pieces (zlib appends a second dictionary to the first in
 * raw mode).
 */
static bool
hist_preset (const struct ws_pmd_history *h, z_stream *z,
             int (*set) (z_streamp, const Bytef *, uInt))
{
  size_t first = (h->len < h->cap - h->start) ? h->len : h->cap - h->start;

  if (0 == h->len)
    return true;
  if (Z_OK != set (z, h->buf + h->start, (uInt) first))
    return false;
  return (first == h->len)
         || (Z_OK == set (z, h->buf, (uInt) (h->len - first)));
}

static void
hist_free (struct MHD_WebSocketStream *ws, struct ws_pmd_history *h)
{
  ws_free (ws, h->buf);
  h->buf = NULL;
  h->cap = h->start = h->len = 0;
}

/* ------------------------------------------------------------ receive */

/**
 * Creates the inflater, window included: the history as dictionary, or
 * when there is none, a final stored block of one byte makes zlib
 * allocate the window, and inflateReset keeps it.
 */
static enum MHD_WEBSOCKET_STATUS
rx_start (struct MHD_WebSocketStream *ws)
{
  static const uint8_t one_byte_block[6] = {
    0x01, 0x01, 0x00, 0xfe, 0xff, 0x00
  };
  struct ws_pmd *p = ws->pmd;
  z_stream *z = zstream_new (ws);
  bool ok;

  if (NULL == z)
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  if (Z_OK != inflateInit2 (z, -p->rx_bits))
  {
    ws_free (ws, z);
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  }
  if (0 != p->rx_hist.len)
    ok = hist_preset (&p->rx_hist, z, inflateSetDictionary);
  else
  {
    uint8_t out[1];
    z->next_in = (Bytef *) one_byte_block;
    z->avail_in = sizeof (one_byte_block);
    z->next_out = out;
    z->avail_out = sizeof (out);
    ok =
      (Z_STREAM_END == inflate (z, Z_NO_FLUSH)) && (Z_OK == inflateReset (z));
  }
  if (! ok)
  {
    (void) inflateEnd (z);
    ws_free (ws, z);
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  }
  p->rx = z;
  return MHD_WEBSOCKET_STATUS_OK;
}

static void
rx_stop (struct MHD_WebSocketStream *ws)
{
  struct ws_pmd *p = ws->pmd;

  if (NULL == p->rx)
    return;
  (void) inflateEnd (p->rx);
  ws_free (ws, p->rx);
  p->rx = NULL;
}

/**
 * Makes room for more output in the message buffer, never more than the
 * limit plus one byte (and the NUL).
 */
static bool
rx_grow (struct MHD_WebSocketStream *ws, size_t hint)
{
  uint64_t most = ws->payload_limit; /* content bytes, +1 to see excess */
  size_t cap;

  if (most > (uint64_t) SIZE_MAX - 2)
    most = (uint64_t) SIZE_MAX - 2;
  most += 2; /* one byte past the limit, and the NUL */
  if (0 == ws->msg_cap)
    cap = (hint < WS_PMD_CHUNK / 4) ? 4 * hint + 64 : WS_PMD_CHUNK;
  else
    cap = (ws->msg_cap <= SIZE_MAX / 2) ? 2 * ws->msg_cap : SIZE_MAX;
  if (cap < ws->msg_len + 2)
    cap = ws->msg_len + 2;
  if (cap > most)
    cap = (size_t) most;
  return ws_msg_set_cap (ws, cap);
}

/** Inflates with @a flush until the input is used and the output drained. */
static enum MHD_WEBSOCKET_STATUS
rx_run (struct MHD_WebSocketStream *ws, const uint8_t *in, size_t len,
        int flush, size_t *used)
{
  struct ws_pmd *p = ws->pmd;
  z_stream *z;
  bool text = WS_OP_TEXT == ws->msg_opcode;

  *used = 0;
  if (p->rx_ended)
  {
    *used = len;
    return MHD_WEBSOCKET_STATUS_OK;
  }
  if (NULL == p->rx)
  {
    enum MHD_WEBSOCKET_STATUS st = rx_start (ws);
    if (MHD_WEBSOCKET_STATUS_OK != st)
      return st;
  }
  z = p->rx;
  z->next_in = (Bytef *) in;
  z->avail_in = (uInt) len; /* len <= WS_PMD_CHUNK */
  for (;;)
  {
    size_t room;
    size_t produced;
    int ret;
    unsigned char *dst;

    if ((NULL == ws->msg_buf) || (ws->msg_cap - ws->msg_len < 2))
    {
      if (! rx_grow (ws, len))
      {
        *used = len - z->avail_in;
        return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
      }
    }
    room = ws->msg_cap - ws->msg_len - 1;
    /* msg_len <= payload_limit here; without a limit, rx_grow bounds. */
    if ((UINT64_MAX != ws->payload_limit)
        && ((uint64_t) room > ws->payload_limit - ws->msg_len + 1))
      room = (size_t) (ws->payload_limit - ws->msg_len + 1);
    if (room > UINT_MAX)
      room = UINT_MAX;
    if (! hist_reserve (ws, &p->rx_hist, room))
    {
      *used = len - z->avail_in;
      return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
    }
    dst = (unsigned char *) ws->msg_buf + ws->msg_len;
    z->next_out = dst;
    z->avail_out = (uInt) room;
    ret = inflate (z, flush);
    produced = room - z->avail_out;
    *used = len - z->avail_in;
    hist_append (&p->rx_hist, dst, produced);
    if (text && (0 != produced)
        && (produced != ws_utf8_check (&ws->msg_utf8, dst, produced)))
      return MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR;
    ws->msg_len += produced;
    if (ws->msg_len > ws->payload_limit)
      return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;
    if (Z_STREAM_END == ret)
    {
      p->rx_ended = true;
      *used = len;
      return MHD_WEBSOCKET_STATUS_OK;
    }
    if ((Z_OK != ret) && (Z_BUF_ERROR != ret))
      return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR; /* corrupt data */
    if ((0 == z->avail_in) && (0 != z->avail_out))
      return MHD_WEBSOCKET_STATUS_OK;
    if ((Z_BUF_ERROR == ret) && (0 != z->avail_out))
      return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR; /* no progress possible */
  }
}

enum MHD_WEBSOCKET_STATUS
ws_pmd_inflate (struct MHD_WebSocketStream *ws, const uint8_t *in, size_t len,
                size_t *used)
{
  return rx_run (ws, in, len, Z_NO_FLUSH, used);
}

enum MHD_WEBSOCKET_STATUS
ws_pmd_inflate_end (struct MHD_WebSocketStream *ws)
{
  struct ws_pmd *p = ws->pmd;
  enum MHD_WEBSOCKET_STATUS st;
  size_t used;

  /* Z_BLOCK stops at the block boundary that the tail completes, where
     data_type tells that the message ended there (bit 128), and not
     inside a block, which would be a truncated message. */
  st = rx_run (ws, sync_tail + p->rx_tail_done, 4u - p->rx_tail_done, Z_BLOCK,
               &used);
  p->rx_tail_done = (uint8_t) (p->rx_tail_done + used);
  if (MHD_WEBSOCKET_STATUS_OK != st)
    return st;
  if (! p->rx_ended && (0 == (p->rx->data_type & 128)))
    return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
  return MHD_WEBSOCKET_STATUS_OK;
}

void
ws_pmd_message_done (struct MHD_WebSocketStream *ws)
{
  struct ws_pmd *p = ws->pmd;

  ws->msg_compressed = false;
  if (NULL == p)
    return;
  /* The history now holds what the inflater's window does. */
  rx_stop (ws);
  /* After BFINAL the peer starts a new stream, whose window is empty. */
  if (p->rx_ended)
    p->rx_hist.start = p->rx_hist.len = 0;
  p->rx_ended = false;
  p->rx_tail_done = 0;
}

/* ------------------------------------------------------------ send */

/**
 * Creates the deflater for a message whose first piece is @a len bytes,
 * primed with the history.  Its settings follow the size:
 * - the library's default level: up to WS_PMD_BEST_UP_TO bytes, zlib's
 *   most thorough search costs less than priming the window did, and
 *   is worth its few percent; above, zlib's default;
 * - up to WS_PMD_SMALL_HASH_UP_TO bytes, a small hash table (memLevel
 *   4, about 140 KiB of zlib state in all) does as well as zlib's
 *   default one (8, about 260 KiB), which made allocators hand pages
 *   back and fault them in again for every message; above, the default
 *   compresses better and faster, and its cost is spread thin.
 */
static enum MHD_WEBSOCKET_STATUS
tx_start (struct MHD_WebSocketStream *ws, size_t len)
{
  struct ws_pmd *p = ws->pmd;
  z_stream *z = zstream_new (ws);
  int level = p->tx_level;
  int mem_level = (len <= WS_PMD_SMALL_HASH_UP_TO) ? 4 : 8;

  if (NULL == z)
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  if (level < 0)
    level =
      (len <= WS_PMD_BEST_UP_TO) ? Z_BEST_COMPRESSION : Z_DEFAULT_COMPRESSION;
  if (Z_OK
      != deflateInit2 (z, level, Z_DEFLATED, -p->tx_bits, mem_level,
                       Z_DEFAULT_STRATEGY))
  {
    ws_free (ws, z);
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  }
  /* deflateSetDictionary does not allocate: it cannot fail here. */
  (void) hist_preset (&p->tx_hist, z, deflateSetDictionary);
  p->tx = z;
  return MHD_WEBSOCKET_STATUS_OK;
}

static void
tx_stop (struct MHD_WebSocketStream *ws)
{
  struct ws_pmd *p = ws->pmd;

  if (NULL == p->tx)
    return;
  (void) deflateEnd (p->tx);
  ws_free (ws, p->tx);
  p->tx = NULL;
}

enum MHD_WEBSOCKET_STATUS
ws_pmd_encode (struct MHD_WebSocketStream *ws, uint8_t first_byte,
               const char *data, size_t len, int fragmentation, char **frame,
               size_t *frame_len)
{
  struct ws_pmd *p = ws->pmd;
  bool first = (MHD_WEBSOCKET_FRAGMENTATION_NONE == fragmentation)
               || (MHD_WEBSOCKET_FRAGMENTATION_FIRST == fragmentation);
  bool last = (MHD_WEBSOCKET_FRAGMENTATION_NONE == fragmentation)
              || (MHD_WEBSOCKET_FRAGMENTATION_LAST == fragmentation);
  bool masked = 0 != (ws->flags & MHD_WEBSOCKET_FLAG_CLIENT);
  bool started = false;
  z_stream *z;
  uint8_t key[4];
  size_t bound;
  size_t clen;
  size_t hsize;
  uint8_t *out;
  uint8_t *body;

  if (first)
    p->tx_in_message = false;
  /* Plain when compression is off, for a short message, or for the
     fragments of a message that started plain. */
  if ((first
       && ((0 == p->tx_level)
           || ((MHD_WEBSOCKET_FRAGMENTATION_NONE == fragmentation)
               && (len < p->tx_min_size))))
      || (! first && ! p->tx_in_message))
    return ws_build_frame (ws, first_byte, data, len, NULL, 0, frame,
                           frame_len);
  if ((len > UINT_MAX / 2) || (len > SIZE_MAX / 2 - 64))
    return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;
  /* Everything that can fail comes before zlib changes its context. */
  if (masked && ! ws_frame_mask_key (ws, key))
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  if (NULL == p->tx)
  {
    if (MHD_WEBSOCKET_STATUS_OK != tx_start (ws, len))
      return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
    started = true;
  }
  z = p->tx;
  /* deflateBound covers a whole stream; Z_SYNC_FLUSH adds an empty
     stored block (5 bytes) at most. */
  bound = deflateBound (z, (uLong) len) + 16;
  out = ws_malloc (ws, WS_MAX_HEADER_SIZE + bound + 1);
  if ((NULL == out) || ! hist_reserve (ws, &p->tx_hist, len))
  {
    /* A deflater made for this call holds nothing the history lacks. */
    ws_free (ws, out);
    if (started)
      tx_stop (ws);
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  }
  body = out + WS_MAX_HEADER_SIZE;
  z->next_in = (Bytef *) data;
  z->avail_in = (uInt) len;
  z->next_out = body;
  z->avail_out = (uInt) bound;
  /* With avail_out from deflateBound, one call takes everything;
     Z_BUF_ERROR only means there was nothing to flush. */
  (void) deflate (z, Z_SYNC_FLUSH);
  clen = bound - z->avail_out;
  hist_append (&p->tx_hist, (const uint8_t *) data, len);
  if (last)
  {
    /* RFC 7692 7.2.1: the tail 00 00 ff ff is removed; an empty result
       is sent as one 0x00 byte (7.2.3.6), which the tail completes. */
    if ((clen >= 4) && (0 == memcmp (body + clen - 4, sync_tail, 4)))
      clen -= 4;
    if (0 == clen)
      body[clen++] = 0x00;
    /* The history now holds what the deflater's window does. */
    tx_stop (ws);
    p->tx_in_message = false;
  }
  else
    p->tx_in_message = true;

  hsize = ws_header_size (clen, masked);
  memmove (out + hsize, body, clen);
  (void) ws_put_header (out, (uint8_t) (first_byte | (first ? WS_RSV1 : 0)),
                        clen, masked ? key : NULL);
  if (masked)
    ws_mask_copy (out + hsize, out + hsize, clen, key, 0);
  out[hsize + clen] = '\0';
  *frame = (char *) out;
  *frame_len = hsize + clen;
  return MHD_WEBSOCKET_STATUS_OK;
}

/* ------------------------------------------------------------ lifecycle */

void
ws_pmd_free (struct MHD_WebSocketStream *ws)
{
  if (NULL == ws->pmd)
    return;
  rx_stop (ws);
  tx_stop (ws);
  hist_free (ws, &ws->pmd->rx_hist);
  hist_free (ws, &ws->pmd->tx_hist);
  ws_free (ws, ws->pmd);
  ws->pmd = NULL;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_stream_enable_deflate (struct MHD_WebSocketStream *ws,
                                     const char *extension_header, int level,
                                     int max_window_bits, size_t min_size)
{
  struct ws_pmd_params a;
  struct ws_pmd *p;
  bool server;
  int send_bits;
  int recv_bits;

  if ((NULL == ws) || (NULL == extension_header) || (NULL != ws->pmd))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  if ((level < -1) || (level > 9) || (0 > max_window_bits)
      || ((0 != max_window_bits)
          && ((max_window_bits < WS_PMD_MIN_BITS)
              || (max_window_bits > WS_PMD_MAX_BITS))))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  /* Only before the first frame: a message half received could not be
     told apart. */
  if ((MHD_WEBSOCKET_VALIDITY_VALID != ws->validity)
      || (WS_DECODE_HEADER != ws->state) || (0 != ws->hdr_have)
      || (0 != ws->msg_opcode))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  if (! ws_pmd_parse_answer (extension_header, &a))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;

  p = ws_malloc (ws, sizeof (*p));
  if (NULL == p)
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  memset (p, 0, sizeof (*p));
  server = 0 == (ws->flags & MHD_WEBSOCKET_FLAG_CLIENT);
  send_bits = server ? a.server_max_window_bits : a.client_max_window_bits;
  recv_bits = server ? a.client_max_window_bits : a.server_max_window_bits;
  if (send_bits <= 0)
    send_bits = WS_PMD_MAX_BITS;
  if (recv_bits <= 0)
    recv_bits = WS_PMD_MAX_BITS;
  if ((0 != max_window_bits) && (send_bits > max_window_bits))
    send_bits = max_window_bits;
  /* zlib's raw deflate has no 256-byte window; with 512 bytes it never
     reaches back further than 250 (its MAX_DIST), within an agreed 8.
     Its raw inflate does have 8, but a peer whose zlib turned 8 into 9
     is then safer with 9 on this side too: a larger window only costs
     256 bytes. */
  if (send_bits < 9)
    send_bits = 9;
  if (recv_bits < 9)
    recv_bits = 9;
  p->tx_bits = send_bits;
  p->tx_level = level;
  p->tx_min_size = min_size;
  if (! (server ? a.server_no_context_takeover : a.client_no_context_takeover))
    p->tx_hist.keep = ((size_t) 1 << send_bits) - WS_PMD_ZLIB_LOOKAHEAD;
  p->rx_bits = recv_bits;
  /* The peer's compressor may reach back a whole window. */
  if (! (server ? a.client_no_context_takeover : a.server_no_context_takeover))
    p->rx_hist.keep = (size_t) 1 << recv_bits;
  ws->pmd = p;
  return MHD_WEBSOCKET_STATUS_OK;
}

bool
ws_pmd_tx_params (const struct MHD_WebSocketStream *ws, int *bits,
                  bool *context_takeover, size_t *min_size)
{
  const struct ws_pmd *p = ws->pmd;

  if ((NULL == p) || (0 == p->tx_level))
    return false;
  *bits = p->tx_bits;
  *context_takeover = 0 != p->tx_hist.keep;
  *min_size = p->tx_min_size;
  return true;
}
