/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file broadcast.c
 * @brief Messages encoded once for many sessions (MHD_websocket_broadcast_*).
 *
 * The plain frame is built when the broadcast is created.  The
 * compressed frame is built by the first session that can take it, with
 * a deflater of its own and no context: every session whose agreed
 * answer has `server_no_context_takeover` inflates each message on its
 * own, so one compressed frame suits them all, provided their window
 * reaches as far back as the frame's back-references do.  The frame is
 * compressed with the smallest window that holds the whole message: no
 * back-reference can then reach further than the message is long, so a
 * short message suits even the sessions that agreed a small window.
 */
#include "broadcast.h"
#include "extension.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** The compressed form is kept only when it saves at least this much
    (a frame's header grows by up to 8 bytes with its length). */
#define WS_BC_MIN_SAVING 8

/** The broadcast's streams never grow a buffer: no realloc is needed. */
static void *
bc_no_realloc (void *buf, size_t len)
{
  (void) buf;
  (void) len;
  return NULL;
}

/** The smallest window (9-15 bits) that holds @a len bytes. */
static int
bc_window_bits (size_t len)
{
  int bits = 9;

  while ((bits < WS_PMD_MAX_BITS) && (len > ((size_t) 1 << bits)))
    bits++;
  return bits;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_broadcast_create (struct MHD_WebSocketBroadcast **broadcast,
                                int binary, const char *data, size_t len,
                                MHD_WebSocketMallocCallback callback_malloc,
                                MHD_WebSocketFreeCallback callback_free)
{
  struct MHD_WebSocketBroadcast *bc;
  size_t hsize;
  uint8_t *frame;

  if (NULL == broadcast)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  *broadcast = NULL;
  if (((NULL == data) && (0 != len)) || ((0 != binary) && (1 != binary))
      || ((NULL == callback_malloc) != (NULL == callback_free)))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  if (NULL == callback_malloc)
  {
    callback_malloc = malloc;
    callback_free = free;
  }
  if (! binary)
  {
    int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;

    if ((len != ws_utf8_check (&step, (const unsigned char *) data, len))
        || (MHD_WEBSOCKET_UTF8STEP_NORMAL != step))
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  }
  hsize = ws_header_size (len, false);
  if (len > SIZE_MAX - hsize - 1)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  bc = callback_malloc (sizeof (*bc));
  if (NULL == bc)
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  memset (bc, 0, sizeof (*bc));
  /* One NUL after the frame, as the encoders leave. */
  frame = callback_malloc (hsize + len + 1);
  if (NULL == frame)
  {
    callback_free (bc);
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  }
  (void) ws_put_header (
    frame, (uint8_t) (WS_FIN | (binary ? WS_OP_BINARY : WS_OP_TEXT)), len,
    NULL);
  if (0 != len)
    memcpy (frame + hsize, data, len);
  frame[hsize + len] = '\0';
  bc->refs = 1;
  bc->malloc_cb = callback_malloc;
  bc->free_cb = callback_free;
  bc->binary = 0 != binary;
  bc->plain = (char *) frame;
  bc->plain_len = hsize + len;
  bc->payload_off = hsize;
  bc->bits = bc_window_bits (len);
  bc->packed_state =
    (len > WS_BC_MIN_SAVING) ? WS_BC_PACKED_NONE : WS_BC_PACKED_NEVER;
  *broadcast = bc;
  return MHD_WEBSOCKET_STATUS_OK;
}

void
ws_bc_ref (struct MHD_WebSocketBroadcast *bc)
{
  WS_ATOMIC_INC (&bc->refs);
}

struct ws_bc_share *
ws_bc_share_new (struct MHD_WebSocketBroadcast *bc)
{
  struct ws_bc_share *sh = bc->malloc_cb (sizeof (*sh));

  if (NULL == sh)
    return NULL;
  ws_bc_ref (bc);
  sh->bc = bc;
  sh->refs = 1;
  return sh;
}

void
ws_bc_share_ref (struct ws_bc_share *sh)
{
  sh->refs++;
}

void
ws_bc_share_drop (struct ws_bc_share *sh)
{
  struct MHD_WebSocketBroadcast *bc = sh->bc;

  if (0 != --sh->refs)
    return;
  /* The share first: its free callback lives in the broadcast, which
     the release may free. */
  bc->free_cb (sh);
  MHD_websocket_broadcast_release (bc);
}

_MHD_EXTERN void
MHD_websocket_broadcast_release (struct MHD_WebSocketBroadcast *bc)
{
  MHD_WebSocketFreeCallback free_cb;

  if (NULL == bc)
    return;
  if (! WS_ATOMIC_DEC_IS_LAST (&bc->refs))
    return;
  free_cb = bc->free_cb;
  /* The last reference: no other thread can be building the packed
     frame (building needs a reference), so plain reads suffice. */
  if (NULL != bc->packed)
    free_cb (bc->packed);
  free_cb (bc->plain);
  free_cb (bc);
}

/**
 * Compresses the message on its own, with the broadcast's allocator.
 * @return 1 made, 0 out of memory, -1 not worth it
 */
static int
bc_build_packed (struct MHD_WebSocketBroadcast *bc)
{
  struct MHD_WebSocketStream *ws;
  char answer[96];
  const char *payload = bc->plain + bc->payload_off;
  size_t len = bc->plain_len - bc->payload_off;
  char *frame = NULL;
  size_t frame_len = 0;
  enum MHD_WEBSOCKET_STATUS ret;

  /* The stream object comes from the C library (as every stream's
     does); its frames come from the broadcast's allocator. */
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_stream_init2 (&ws, MHD_WEBSOCKET_FLAG_SERVER, 0,
                                     bc->malloc_cb, bc_no_realloc, bc->free_cb,
                                     NULL, NULL))
    return 0;
  (void) snprintf (answer, sizeof (answer),
                   "permessage-deflate; server_no_context_takeover; "
                   "server_max_window_bits=%d",
                   bc->bits);
  ret = MHD_websocket_stream_enable_deflate (ws, answer, -1, 0, 0);
  if (MHD_WEBSOCKET_STATUS_OK == ret)
  {
    if (bc->binary)
      ret = MHD_websocket_encode_binary (
        ws, payload, len, MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame, &frame_len);
    else
      ret = MHD_websocket_encode_text (ws, payload, len,
                                       MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame,
                                       &frame_len, NULL);
  }
  MHD_websocket_stream_free (ws);
  if (MHD_WEBSOCKET_STATUS_OK != ret)
    return (MHD_WEBSOCKET_STATUS_MEMORY_ERROR == ret) ? 0 : -1;
  if (frame_len + WS_BC_MIN_SAVING > bc->plain_len)
  {
    bc->free_cb (frame);
    return -1;
  }
  bc->packed = frame;
  bc->packed_len = frame_len;
  return 1;
}

void
ws_bc_frame (struct MHD_WebSocketBroadcast *bc, bool want_packed,
             const char **frame, size_t *frame_len)
{
  int state;

  *frame = bc->plain;
  *frame_len = bc->plain_len;
  if (! want_packed)
    return;
  state = WS_ATOMIC_LOAD (&bc->packed_state);
  if (WS_BC_PACKED_NONE == state)
  {
    int expected = WS_BC_PACKED_NONE;

    if (WS_ATOMIC_CAS (&bc->packed_state, &expected, WS_BC_PACKED_BUILDING))
    {
      int made = bc_build_packed (bc);

      state = (made > 0)    ? WS_BC_PACKED_READY
              : (made == 0) ? WS_BC_PACKED_NONE
                            : WS_BC_PACKED_NEVER;
      WS_ATOMIC_STORE (&bc->packed_state, state);
    }
    else
      state = expected;
  }
  if (WS_BC_PACKED_READY == state)
  {
    *frame = bc->packed;
    *frame_len = bc->packed_len;
  }
}
