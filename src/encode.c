/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file encode.c
 * @brief Frame encoders.  They read only the stream's mode and callbacks,
 *        never its decoder state, so one thread may encode while another
 *        decodes.  With permessage-deflate, data frames also advance the
 *        sending half of the compression state (deflate.c), which the
 *        decoder never touches.
 */
#include "internal.h"
#include "deflate.h"
#include "mask.h"
#include "utf8.h"

#include <string.h>

/** The first byte of a data frame for a fragmentation mode. */
static uint8_t
data_first_byte (enum ws_opcode opcode, int fragmentation)
{
  switch (fragmentation)
  {
  case MHD_WEBSOCKET_FRAGMENTATION_FIRST:
    return (uint8_t) opcode;
  case MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING:
    return WS_OP_CONTINUATION;
  case MHD_WEBSOCKET_FRAGMENTATION_LAST:
    return WS_FIN | WS_OP_CONTINUATION;
  default:
    return (uint8_t) (WS_FIN | opcode);
  }
}

/** Resets the outputs and checks what every encoder needs. */
static enum MHD_WEBSOCKET_STATUS
check_common (const struct MHD_WebSocketStream *ws, const void *payload,
              size_t payload_len, char **frame, size_t *frame_len)
{
  if (NULL != frame)
    *frame = NULL;
  if (NULL != frame_len)
    *frame_len = 0;
  if ((NULL == ws) || (NULL == frame) || (NULL == frame_len)
      || ((NULL == payload) && (0 != payload_len)))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  return MHD_WEBSOCKET_STATUS_OK;
}

static enum MHD_WEBSOCKET_STATUS
check_data (const struct MHD_WebSocketStream *ws, const void *payload,
            size_t payload_len, int fragmentation, char **frame,
            size_t *frame_len)
{
  enum MHD_WEBSOCKET_STATUS st;

  st = check_common (ws, payload, payload_len, frame, frame_len);
  if (MHD_WEBSOCKET_STATUS_OK != st)
    return st;
  if ((fragmentation < MHD_WEBSOCKET_FRAGMENTATION_NONE)
      || (fragmentation > MHD_WEBSOCKET_FRAGMENTATION_LAST))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  if ((uint64_t) payload_len > WS_MAX_PAYLOAD_LENGTH)
    return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;
  return MHD_WEBSOCKET_STATUS_OK;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_encode_text (struct MHD_WebSocketStream *ws,
                           const char *payload_utf8, size_t payload_utf8_len,
                           int fragmentation, char **frame, size_t *frame_len,
                           int *utf8_step)
{
  enum MHD_WEBSOCKET_STATUS st;
  int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  bool must_end = (MHD_WEBSOCKET_FRAGMENTATION_NONE == fragmentation)
                  || (MHD_WEBSOCKET_FRAGMENTATION_LAST == fragmentation);

  /* A new message starts at a character boundary, whatever the caller's
     variable held (as in the original library, even before the other
     checks). */
  if ((NULL != utf8_step)
      && ((MHD_WEBSOCKET_FRAGMENTATION_NONE == fragmentation)
          || (MHD_WEBSOCKET_FRAGMENTATION_FIRST == fragmentation)))
    *utf8_step = MHD_WEBSOCKET_UTF8STEP_NORMAL;

  /* The original's order: every parameter check (a fragmented call
     needs utf8_step) comes before the size check. */
  st = check_common (ws, payload_utf8, payload_utf8_len, frame, frame_len);
  if (MHD_WEBSOCKET_STATUS_OK != st)
    return st;
  if ((fragmentation < MHD_WEBSOCKET_FRAGMENTATION_NONE)
      || (fragmentation > MHD_WEBSOCKET_FRAGMENTATION_LAST)
      || ((MHD_WEBSOCKET_FRAGMENTATION_NONE != fragmentation)
          && (NULL == utf8_step)))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  if ((uint64_t) payload_utf8_len > WS_MAX_PAYLOAD_LENGTH)
    return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;
  if (NULL != utf8_step)
    step = *utf8_step;

  if (0 == payload_utf8_len)
  {
    /* Nothing to judge, as in the original: an empty fragment carries
       the caller's state through unchanged, and an empty LAST fragment
       is the message's empty final frame.  (NONE started at NORMAL.) */
    return ws_build_frame (ws, data_first_byte (WS_OP_TEXT, fragmentation),
                           payload_utf8, 0, NULL, 0, frame, frame_len);
  }
  /* A state outside the enum is a broken sequence, as the original
     treated it (its validator knew no such state). */
  if ((step < MHD_WEBSOCKET_UTF8STEP_NORMAL)
      || (step > MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3))
    return MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR;
  if (payload_utf8_len
      != ws_utf8_check (&step, (const unsigned char *) payload_utf8,
                        payload_utf8_len))
    return MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR;
  if (NULL != utf8_step)
    *utf8_step = step;
  /* Deliberate: the original let a LAST fragment end inside a
     character; the message would then be invalid UTF-8 (RFC 6455 8.1). */
  if (must_end && (MHD_WEBSOCKET_UTF8STEP_NORMAL != step))
    return MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR;

  if (NULL != ws->pmd)
    return ws_pmd_encode (ws, data_first_byte (WS_OP_TEXT, fragmentation),
                          payload_utf8, payload_utf8_len, fragmentation, frame,
                          frame_len);
  return ws_build_frame (ws, data_first_byte (WS_OP_TEXT, fragmentation),
                         payload_utf8, payload_utf8_len, NULL, 0, frame,
                         frame_len);
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_encode_binary (struct MHD_WebSocketStream *ws,
                             const char *payload, size_t payload_len,
                             int fragmentation, char **frame, size_t *frame_len)
{
  enum MHD_WEBSOCKET_STATUS st;

  st = check_data (ws, payload, payload_len, fragmentation, frame, frame_len);
  if (MHD_WEBSOCKET_STATUS_OK != st)
    return st;
  if (NULL != ws->pmd)
    return ws_pmd_encode (ws, data_first_byte (WS_OP_BINARY, fragmentation),
                          payload, payload_len, fragmentation, frame,
                          frame_len);
  return ws_build_frame (ws, data_first_byte (WS_OP_BINARY, fragmentation),
                         payload, payload_len, NULL, 0, frame, frame_len);
}

static enum MHD_WEBSOCKET_STATUS
encode_ping_pong (struct MHD_WebSocketStream *ws, enum ws_opcode opcode,
                  const char *payload, size_t payload_len, char **frame,
                  size_t *frame_len)
{
  enum MHD_WEBSOCKET_STATUS st;

  st = check_common (ws, payload, payload_len, frame, frame_len);
  if (MHD_WEBSOCKET_STATUS_OK != st)
    return st;
  if (WS_MAX_CONTROL_PAYLOAD < payload_len)
    return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;
  return ws_build_frame (ws, (uint8_t) (WS_FIN | opcode), payload, payload_len,
                         NULL, 0, frame, frame_len);
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_encode_ping (struct MHD_WebSocketStream *ws, const char *payload,
                           size_t payload_len, char **frame, size_t *frame_len)
{
  return encode_ping_pong (ws, WS_OP_PING, payload, payload_len, frame,
                           frame_len);
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_encode_pong (struct MHD_WebSocketStream *ws, const char *payload,
                           size_t payload_len, char **frame, size_t *frame_len)
{
  return encode_ping_pong (ws, WS_OP_PONG, payload, payload_len, frame,
                           frame_len);
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_encode_close (struct MHD_WebSocketStream *ws,
                            unsigned short reason_code, const char *reason_utf8,
                            size_t reason_utf8_len, char **frame,
                            size_t *frame_len)
{
  enum MHD_WEBSOCKET_STATUS st;
  int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  uint8_t code[2];

  st = check_common (ws, reason_utf8, reason_utf8_len, frame, frame_len);
  if (MHD_WEBSOCKET_STATUS_OK != st)
    return st;
  if (MHD_WEBSOCKET_CLOSEREASON_NO_REASON == reason_code)
  {
    /* A reason text needs a code in front of it (RFC 6455 5.5.1). */
    if (0 != reason_utf8_len)
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    return ws_build_frame (ws, WS_FIN | WS_OP_CLOSE, NULL, 0, NULL, 0, frame,
                           frame_len);
  }
  /* Codes from 1000 up are the application's choice, as in the original
     library; below that nothing is defined. */
  if (reason_code < MHD_WEBSOCKET_CLOSEREASON_REGULAR)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  if (WS_MAX_CONTROL_PAYLOAD - 2 < reason_utf8_len)
    return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;
  if ((reason_utf8_len
       != ws_utf8_check (&step, (const unsigned char *) reason_utf8,
                         reason_utf8_len))
      || (MHD_WEBSOCKET_UTF8STEP_NORMAL != step))
    return MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR;

  code[0] = (uint8_t) (reason_code >> 8);
  code[1] = (uint8_t) reason_code;
  return ws_build_frame (ws, WS_FIN | WS_OP_CLOSE, code, 2, reason_utf8,
                         reason_utf8_len, frame, frame_len);
}
