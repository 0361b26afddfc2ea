/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file stream.c
 * @brief Stream lifecycle and the allocator helpers.
 */
#include "internal.h"
#include "deflate.h"

#include <stdlib.h>
#include <string.h>

#define KNOWN_FLAGS                                                            \
  (MHD_WEBSOCKET_FLAG_CLIENT | MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS               \
   | MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR)

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_stream_init2 (struct MHD_WebSocketStream **ws, int flags,
                            size_t max_payload_size,
                            MHD_WebSocketMallocCallback callback_malloc,
                            MHD_WebSocketReallocCallback callback_realloc,
                            MHD_WebSocketFreeCallback callback_free,
                            void *cls_rng,
                            MHD_WebSocketRandomNumberGenerator callback_rng)
{
  struct MHD_WebSocketStream *s;

  if (NULL == ws)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  *ws = NULL;
  if ((0 != (flags & ~KNOWN_FLAGS)) || (NULL == callback_malloc)
      || (NULL == callback_realloc) || (NULL == callback_free)
      || ((0 != (flags & MHD_WEBSOCKET_FLAG_CLIENT)) && (NULL == callback_rng))
      || ((uint64_t) max_payload_size > WS_MAX_PAYLOAD_LENGTH))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;

  /* The stream object itself comes from the C library, as in the
     original: programs create streams while their callbacks refuse
     memory (a pool not set up yet) and rely on that.  Everything handed
     out or buffered goes through the callbacks. */
  s = malloc (sizeof (*s));
  if (NULL == s)
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  memset (s, 0, sizeof (*s));
  s->malloc_cb = callback_malloc;
  s->realloc_cb = callback_realloc;
  s->free_cb = callback_free;
  s->rng_cb = callback_rng;
  s->rng_cls = cls_rng;
  s->payload_limit = (0 != max_payload_size) ? max_payload_size : UINT64_MAX;
  s->flags = flags;
  s->want_mask_bit =
    (0 != (flags & MHD_WEBSOCKET_FLAG_CLIENT)) ? 0 : (uint8_t) WS_MASK_BIT;
  s->validity = MHD_WEBSOCKET_VALIDITY_VALID;
  s->state = WS_DECODE_HEADER;
  s->msg_utf8 = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  s->ctrl_utf8 = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  *ws = s;
  return MHD_WEBSOCKET_STATUS_OK;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_stream_init (struct MHD_WebSocketStream **ws, int flags,
                           size_t max_payload_size)
{
  return MHD_websocket_stream_init2 (ws, flags, max_payload_size, malloc,
                                     realloc, free, NULL, NULL);
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_stream_free (struct MHD_WebSocketStream *ws)
{
  if (NULL == ws)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  ws_decode_drop_message (ws);
  ws_pmd_free (ws);
  free (ws);
  return MHD_WEBSOCKET_STATUS_OK;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_stream_invalidate (struct MHD_WebSocketStream *ws)
{
  if (NULL == ws)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  /* Only the flag: a sending thread may invalidate while the receiving
     thread decodes, so the decoder's buffers are released by the
     decoder itself (next call) or by stream_free. */
  ws->validity = MHD_WEBSOCKET_VALIDITY_INVALID;
  return MHD_WEBSOCKET_STATUS_OK;
}

_MHD_EXTERN enum MHD_WEBSOCKET_VALIDITY
MHD_websocket_stream_is_valid (struct MHD_WebSocketStream *ws)
{
  if (NULL == ws)
    return MHD_WEBSOCKET_VALIDITY_INVALID;
  return ws->validity;
}

_MHD_EXTERN void *
MHD_websocket_malloc (struct MHD_WebSocketStream *ws, size_t buf_len)
{
  if (NULL == ws)
    return NULL;
  return ws->malloc_cb (buf_len);
}

_MHD_EXTERN void *
MHD_websocket_realloc (struct MHD_WebSocketStream *ws, void *buf,
                       size_t new_buf_len)
{
  if (NULL == ws)
    return NULL;
  return ws->realloc_cb (buf, new_buf_len);
}

_MHD_EXTERN int
MHD_websocket_free (struct MHD_WebSocketStream *ws, void *buf)
{
  if (NULL == ws)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  /* The callback sees every call, NULL too, as in the original. */
  ws->free_cb (buf);
  return MHD_WEBSOCKET_STATUS_OK;
}
