/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file frame.h
 * @brief RFC 6455 section 5.2 frame layout: opcodes, bits, sizes.
 */
#ifndef WS_FRAME_H
#define WS_FRAME_H 1

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/** RFC 6455 section 11.8 opcodes. */
enum ws_opcode
{
  WS_OP_CONTINUATION = 0x0,
  WS_OP_TEXT = 0x1,
  WS_OP_BINARY = 0x2,
  WS_OP_CLOSE = 0x8,
  WS_OP_PING = 0x9,
  WS_OP_PONG = 0xA
};

#define WS_FIN 0x80u
#define WS_RSV_BITS 0x70u
/** RSV1 marks a compressed message (RFC 7692 section 6). */
#define WS_RSV1 0x40u
#define WS_OPCODE_BITS 0x0Fu
#define WS_MASK_BIT 0x80u
#define WS_LEN7_BITS 0x7Fu
/** A 7-bit length of 126 or 127 announces a 16- or 64-bit length. */
#define WS_LEN7_16BIT 126u
#define WS_LEN7_64BIT 127u

/** 2 fixed bytes, 8 length bytes, 4 mask bytes. */
#define WS_MAX_HEADER_SIZE 14
/** RFC 6455 section 5.5. */
#define WS_MAX_CONTROL_PAYLOAD 125
/** RFC 6455 section 5.2: the 64-bit length's top bit must be 0. */
#define WS_MAX_PAYLOAD_LENGTH UINT64_C (0x7FFFFFFFFFFFFFFF)

/** A parsed frame header. */
struct ws_frame_header
{
  uint64_t payload_len;
  /** The masking key in wire order. */
  uint8_t mask[4];
  uint8_t opcode;
  bool fin;
  bool masked;
  /** RSV1 was set. */
  bool compressed;
  /** Bytes the header took on the wire (2 to 14). */
  uint8_t size;
};

static inline bool
ws_opcode_is_control (unsigned opcode)
{
  return 0 != (opcode & 0x8u);
}

/** The header size of a frame with this payload length. */
static inline size_t
ws_header_size (uint64_t payload_len, bool masked)
{
  size_t n = 2 + (masked ? 4 : 0);
  if (payload_len > 0xFFFFu)
    return n + 8;
  if (payload_len > WS_MAX_CONTROL_PAYLOAD)
    return n + 2;
  return n;
}

/**
 * Writes a frame header at @a out: @a b0 (FIN, RSV bits, opcode), the
 * payload length in its shortest form (RFC 6455 5.2), and, when @a key
 * is not NULL, the mask bit and the key.  The one writer of frame
 * headers: the encoders, deflate, the session's control frames and
 * broadcasts all use it.
 *
 * @return the header's size, ws_header_size (len, NULL != key): at most
 *         14 bytes
 */
static inline size_t
ws_put_header (uint8_t *out, uint8_t b0, uint64_t len, const uint8_t *key)
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

/* ---- frame.c.  Declared with the stream, so included through
   internal.h (which sets the export visibility before the public
   header), not on its own. ---- */

struct MHD_WebSocketStream;

/**
 * Builds a complete frame in a fresh buffer (NUL after it), masked when
 * the stream is a client.  Shared by the encoders and by the decoder's
 * close frames on error.  The payload is given in up to two pieces
 * (a close code and its reason text) so that no caller needs to copy.
 */
enum MHD_WEBSOCKET_STATUS ws_build_frame (const struct MHD_WebSocketStream *ws,
                                          uint8_t first_byte, const void *p1,
                                          size_t len1, const void *p2,
                                          size_t len2, char **frame,
                                          size_t *frame_len);

/** Fills a client frame's masking key from the stream's generator. */
bool ws_frame_mask_key (const struct MHD_WebSocketStream *ws, uint8_t key[4]);

/**
 * Gives the message buffer @a cap bytes (at least msg_len + 1), moving a
 * held-back UTF-8 sequence into it when it is first allocated.  The one
 * place that allocates it; each reader decides how much it grows.
 */
bool ws_msg_set_cap (struct MHD_WebSocketStream *ws, size_t cap);

#endif
