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
 * Memory: zlib allocates through the stream's callbacks.  Without
 * context takeover the inflater (or deflater) exists only while a
 * message is in flight.  The inflater's window is forced into existence
 * when the inflater is created (zlib would otherwise allocate it inside
 * inflate(), where a failure is final), so inflate() never allocates.
 */
#include "deflate.h"
#include "extension.h"
#include "mask.h"
#include "utf8.h"

#include <limits.h>
#include <string.h>
#include <zlib.h>

/** The two halves of the compression state (see deflate.h). */
struct ws_pmd
{
  /* --- sending half: only the encoders touch it --- */
  z_stream tx;
  /** deflateInit2 succeeded and deflateEnd was not called. */
  bool tx_live;
  /** A fragmented message is being sent compressed. */
  bool tx_in_message;
  /** No context takeover on this side: deflater freed after messages. */
  bool tx_reset;
  int tx_bits;
  int tx_level;
  int tx_mem_level;
  size_t tx_min_size;

  /* --- receiving half: only the decoder touches it --- */
  z_stream rx;
  bool rx_live;
  /** The peer ended its deflate stream (BFINAL) inside this message:
      the rest of the message is ignored, as after the end of any deflate stream. */
  bool rx_ended;
  /** The peer resets its context per message: inflater freed after. */
  bool rx_reset;
  int rx_bits;
  /** Bytes of the `00 00 ff ff` tail already inflated (MEMORY_ERROR). */
  uint8_t rx_tail_done;
};

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

static void
zstream_setup (struct MHD_WebSocketStream *ws, z_stream *z)
{
  memset (z, 0, sizeof (*z));
  z->zalloc = pmd_zalloc;
  z->zfree = pmd_zfree;
  z->opaque = ws;
}

/* ------------------------------------------------------------ receive */

/**
 * Creates the inflater, window included: a final stored block of one
 * byte makes zlib allocate the window, and inflateReset keeps it.
 */
static enum MHD_WEBSOCKET_STATUS
rx_start (struct MHD_WebSocketStream *ws)
{
  static const uint8_t one_byte_block[6] = {
    0x01, 0x01, 0x00, 0xfe, 0xff, 0x00
  };
  struct ws_pmd *p = ws->pmd;
  uint8_t out[1];
  int ret;

  zstream_setup (ws, &p->rx);
  if (Z_OK != inflateInit2 (&p->rx, -p->rx_bits))
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  p->rx.next_in = (Bytef *) one_byte_block;
  p->rx.avail_in = sizeof (one_byte_block);
  p->rx.next_out = out;
  p->rx.avail_out = sizeof (out);
  ret = inflate (&p->rx, Z_NO_FLUSH);
  if ((Z_STREAM_END != ret) || (Z_OK != inflateReset (&p->rx)))
  {
    (void) inflateEnd (&p->rx);
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  }
  p->rx_live = true;
  return MHD_WEBSOCKET_STATUS_OK;
}

static void
rx_stop (struct MHD_WebSocketStream *ws)
{
  struct ws_pmd *p = ws->pmd;

  if (p->rx_live)
    (void) inflateEnd (&p->rx);
  p->rx_live = false;
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
  z_stream *z = &p->rx;
  bool text = WS_OP_TEXT == ws->msg_opcode;

  *used = 0;
  if (p->rx_ended)
  {
    *used = len;
    return MHD_WEBSOCKET_STATUS_OK;
  }
  if (! p->rx_live)
  {
    enum MHD_WEBSOCKET_STATUS st = rx_start (ws);
    if (MHD_WEBSOCKET_STATUS_OK != st)
      return st;
  }
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
    dst = (unsigned char *) ws->msg_buf + ws->msg_len;
    z->next_out = dst;
    z->avail_out = (uInt) room;
    ret = inflate (z, flush);
    produced = room - z->avail_out;
    *used = len - z->avail_in;
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
  if (! p->rx_ended && (0 == (p->rx.data_type & 128)))
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
  if (p->rx_live && (p->rx_reset || p->rx_ended))
  {
    /* After BFINAL the peer starts a new stream, whose window is empty. */
    if (p->rx_reset)
      rx_stop (ws);
    else
      (void) inflateReset (&p->rx);
  }
  p->rx_ended = false;
  p->rx_tail_done = 0;
}

/* ------------------------------------------------------------ send */

static enum MHD_WEBSOCKET_STATUS
tx_start (struct MHD_WebSocketStream *ws)
{
  struct ws_pmd *p = ws->pmd;

  zstream_setup (ws, &p->tx);
  if (Z_OK
      != deflateInit2 (&p->tx, p->tx_level, Z_DEFLATED, -p->tx_bits,
                       p->tx_mem_level, Z_DEFAULT_STRATEGY))
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  p->tx_live = true;
  return MHD_WEBSOCKET_STATUS_OK;
}

static void
tx_stop (struct MHD_WebSocketStream *ws)
{
  struct ws_pmd *p = ws->pmd;

  if (p->tx_live)
    (void) deflateEnd (&p->tx);
  p->tx_live = false;
}

/** Writes a frame header; @return its size. */
static size_t
put_header (uint8_t *out, uint8_t b0, uint64_t len, const uint8_t *key)
{
  size_t n = 0;
  int i;

  out[n++] = b0;
  if (len <= WS_MAX_CONTROL_PAYLOAD)
    out[n++] = (uint8_t) len;
  else if (len <= 0xFFFFu)
  {
    out[n++] = WS_LEN7_16BIT;
    out[n++] = (uint8_t) (len >> 8);
    out[n++] = (uint8_t) len;
  }
  else
  {
    out[n++] = WS_LEN7_64BIT;
    for (i = 56; i >= 0; i -= 8)
      out[n++] = (uint8_t) (len >> i);
  }
  if (NULL != key)
  {
    out[1] |= WS_MASK_BIT;
    memcpy (out + n, key, 4);
    n += 4;
  }
  return n;
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
  if (! p->tx_live)
  {
    if (MHD_WEBSOCKET_STATUS_OK != tx_start (ws))
      return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
    started = true;
  }
  /* deflateBound covers a whole stream; Z_SYNC_FLUSH adds an empty
     stored block (5 bytes) at most. */
  bound = deflateBound (&p->tx, (uLong) len) + 16;
  out = ws_malloc (ws, WS_MAX_HEADER_SIZE + bound + 1);
  if (NULL == out)
  {
    if (started && p->tx_reset)
      tx_stop (ws);
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  }
  body = out + WS_MAX_HEADER_SIZE;
  p->tx.next_in = (Bytef *) data;
  p->tx.avail_in = (uInt) len;
  p->tx.next_out = body;
  p->tx.avail_out = (uInt) bound;
  /* With avail_out from deflateBound, one call takes everything;
     Z_BUF_ERROR only means there was nothing to flush. */
  (void) deflate (&p->tx, Z_SYNC_FLUSH);
  clen = bound - p->tx.avail_out;
  if (last)
  {
    /* RFC 7692 7.2.1: the tail 00 00 ff ff is removed; an empty result
       is sent as one 0x00 byte (7.2.3.6), which the tail completes. */
    if ((clen >= 4) && (0 == memcmp (body + clen - 4, sync_tail, 4)))
      clen -= 4;
    if (0 == clen)
      body[clen++] = 0x00;
    if (p->tx_reset)
      tx_stop (ws);
    p->tx_in_message = false;
  }
  else
    p->tx_in_message = true;

  hsize = ws_header_size (clen, masked);
  memmove (out + hsize, body, clen);
  (void) put_header (out, (uint8_t) (first_byte | (first ? WS_RSV1 : 0)), clen,
                     masked ? key : NULL);
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
  if (0 == max_window_bits)
    max_window_bits = WS_PMD_DEFAULT_SEND_BITS;
  if (send_bits > max_window_bits)
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
  /* zlib's memLevel: its default (8) at 15 bits, less with the window;
     up to 12 bits, 2 (a 1 KiB hash), which for chat-sized messages
     loses little and keeps the default within 64 KiB a connection. */
  p->tx_mem_level = (send_bits <= 12) ? 2 : send_bits - 7;
  p->tx_level = (level < 0) ? WS_PMD_DEFAULT_LEVEL : level;
  p->tx_min_size = min_size;
  p->tx_reset =
    server ? a.server_no_context_takeover : a.client_no_context_takeover;
  p->rx_bits = recv_bits;
  p->rx_reset =
    server ? a.client_no_context_takeover : a.server_no_context_takeover;
  ws->pmd = p;
  return MHD_WEBSOCKET_STATUS_OK;
}
