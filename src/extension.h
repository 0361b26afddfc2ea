/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file extension.h
 * @brief Sec-WebSocket-Extensions parsing and the permessage-deflate
 *        parameters (RFC 6455 section 9.1, RFC 7692 section 7).
 */
#ifndef WS_EXTENSION_H
#define WS_EXTENSION_H 1

#include <stdbool.h>
#include <stddef.h>

/** The smallest and largest LZ77 window RFC 7692 allows (base 2 log). */
#define WS_PMD_MIN_BITS 8
#define WS_PMD_MAX_BITS 15

/** Parameters of one permessage-deflate offer or answer. */
struct ws_pmd_params
{
  bool server_no_context_takeover;
  bool client_no_context_takeover;
  /** 8-15, or 0 when absent. */
  int server_max_window_bits;
  /** 8-15, 0 when absent, -1 when present without a value (offers). */
  int client_max_window_bits;
};

/**
 * Called for each permessage-deflate element of a list, in order.
 * @a valid is false when the element's parameters break RFC 7692 (unknown,
 * repeated, or a bad value), or, when parsing an answer, a form that only
 * an offer may have.
 * @return false to stop the walk
 */
typedef bool (*ws_pmd_visitor) (void *cls, const struct ws_pmd_params *p,
                                bool valid);

/**
 * Walks a Sec-WebSocket-Extensions value (RFC 7230 list of extensions
 * with parameters; values as tokens or quoted strings).  Other
 * extensions are counted in @a others but not reported.
 *
 * @param as_answer judge parameters as in a server's answer
 * @return false when the value is not well-formed (the visitor may have
 *         seen some elements before the error)
 */
bool ws_pmd_walk (const char *header, bool as_answer, ws_pmd_visitor visit,
                  void *cls, unsigned *others);

/**
 * Parses an agreed value (a server's answer): exactly one extension,
 * permessage-deflate, with valid parameters.
 */
bool ws_pmd_parse_answer (const char *header, struct ws_pmd_params *out);

#endif
