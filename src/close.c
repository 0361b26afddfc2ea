/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file close.c
 * @brief Close codes and close frame payloads (RFC 6455 section 7.4).
 */
#include "internal.h"
#include "close.h"

bool
ws_close_code_valid_on_wire (unsigned code)
{
  if (code < 1000)
    return false; /* 0-999: not used (7.4.2) */
  if (code <= 1003)
    return true;
  if (code <= 1006)
    return false; /* 1004 reserved; 1005, 1006 never sent (7.4.1) */
  if (code <= 1014)
    return true; /* 1007-1011 defined, 1012-1014 registered since */
  if (code < 3000)
    return false; /* 1015 (TLS) never sent; the rest reserved */
  /* 3000-4999 belong to libraries and applications.  RFC 6455 leaves
     5000 and up undefined; like the original library we hand them to the
     application unjudged. */
  return true;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_split_close_reason (const char *payload, size_t payload_len,
                                  unsigned short *reason_code,
                                  const char **reason_utf8,
                                  size_t *reason_utf8_len)
{
  if (NULL != reason_code)
    *reason_code = MHD_WEBSOCKET_CLOSEREASON_NO_REASON;
  if (NULL != reason_utf8)
    *reason_utf8 = NULL;
  if (NULL != reason_utf8_len)
    *reason_utf8_len = 0;

  if ((NULL == payload) && (0 != payload_len))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  if (0 == payload_len)
    return MHD_WEBSOCKET_STATUS_OK;
  if (1 == payload_len)
    return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
  if (WS_MAX_CONTROL_PAYLOAD < payload_len)
    return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;

  if (NULL != reason_code)
    *reason_code = (unsigned short) (((unsigned char) payload[0] << 8)
                                     | (unsigned char) payload[1]);
  if (2 < payload_len)
  {
    if (NULL != reason_utf8)
      *reason_utf8 = payload + 2;
    if (NULL != reason_utf8_len)
      *reason_utf8_len = payload_len - 2;
  }
  return MHD_WEBSOCKET_STATUS_OK;
}
