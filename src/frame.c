/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file frame.c
 * @brief What both directions need below the codecs: the frame writer,
 *        the client's masking key and the message buffer's allocation.
 *
 * The encoders, the compressor (deflate.c) and the decoder's close
 * frames on error all write frames through ws_build_frame(); the decoder
 * and the inflater (deflate.c) both fill the message buffer through
 * ws_msg_set_cap().  Keeping them here, under deflate.c, lets the calls
 * between the source files go one way only (see internal.h).
 */
#include "internal.h"
#include "mask.h"

#include <string.h>

bool
ws_frame_mask_key (const struct MHD_WebSocketStream *ws, uint8_t key[4])
{
  size_t have = 0;
  int tries;
  /* A generator may deliver fewer bytes than asked; give it a few
     chances before reporting the failure. */
  for (tries = 0; (tries < 4) && (have < 4); tries++)
  {
    size_t got = ws->rng_cb (ws->rng_cls, key + have, 4 - have);
    if (got > 4 - have)
      return false;
    have += got;
  }
  return 4 == have;
}

/** Appends piece @a p of @a len bytes at @a out, masked from @a offset. */
static void
put_payload (uint8_t *out, const void *p, size_t len, const uint8_t *key,
             uint64_t offset)
{
  if (0 == len)
    return;
  if (NULL != key)
    ws_mask_copy (out, p, len, key, offset);
  else
    memcpy (out, p, len);
}

enum MHD_WEBSOCKET_STATUS
ws_build_frame (const struct MHD_WebSocketStream *ws, uint8_t first_byte,
                const void *p1, size_t len1, const void *p2, size_t len2,
                char **frame, size_t *frame_len)
{
  bool masked = 0 != (ws->flags & MHD_WEBSOCKET_FLAG_CLIENT);
  uint64_t plen = (uint64_t) len1 + len2;
  size_t hsize = ws_header_size (plen, masked);
  uint8_t key[4];
  uint8_t *out;
  size_t n;

  /* Where size_t is narrower than the 63-bit frame length. */
  if (plen > SIZE_MAX - hsize - 1)
    return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;
  if (masked && ! ws_frame_mask_key (ws, key))
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  out = ws_malloc (ws, hsize + (size_t) plen + 1);
  if (NULL == out)
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;

  n = ws_put_header (out, first_byte, plen, masked ? key : NULL);
  put_payload (out + n, p1, len1, masked ? key : NULL, 0);
  put_payload (out + n + len1, p2, len2, masked ? key : NULL, len1);
  out[hsize + plen] = '\0';
  *frame = (char *) out;
  *frame_len = hsize + (size_t) plen;
  return MHD_WEBSOCKET_STATUS_OK;
}

bool
ws_msg_set_cap (struct MHD_WebSocketStream *ws, size_t cap)
{
  char *buf;

  /* realloc (NULL, ...) costs more than malloc in common allocators, and
     most messages are one frame: this is the only allocation they get. */
  if (NULL == ws->msg_buf)
    buf = ws->malloc_cb (cap);
  else
    buf = ws->realloc_cb (ws->msg_buf, cap);
  if (NULL == buf)
    return false;
  /* A held-back UTF-8 sequence starts the new fragment's buffer. */
  if ((NULL == ws->msg_buf) && (0 != ws->msg_len))
    memcpy (buf, ws->held, ws->msg_len);
  ws->msg_buf = buf;
  ws->msg_cap = cap;
  return true;
}
