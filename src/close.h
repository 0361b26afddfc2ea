/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file close.h
 * @brief Close codes (RFC 6455 section 7.4).
 */
#ifndef WS_CLOSE_H
#define WS_CLOSE_H 1

#include <stdbool.h>

/**
 * Whether a close code may appear in a received close frame.
 */
bool ws_close_code_valid_on_wire (unsigned code);

#endif
