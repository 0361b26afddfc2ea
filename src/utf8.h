/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file utf8.h
 * @brief Incremental UTF-8 validation (RFC 3629), shared by the decoder
 *        and the text encoder.
 *
 * The state is an enum MHD_WEBSOCKET_UTF8STEP value, so the encoder's
 * public `utf8_step` argument and the decoder's per-message state are the
 * same thing, and a sequence may be cut anywhere between two calls.
 */
#ifndef WS_UTF8_H
#define WS_UTF8_H 1

#include <stddef.h>
#include <stdint.h>

/**
 * Validates @a len bytes, continuing from @a *step.
 *
 * @return @a len when every byte is acceptable (then @a *step is the
 *         state after the last byte, MHD_WEBSOCKET_UTF8STEP_NORMAL when
 *         they end on a character boundary); otherwise the index of the
 *         first byte that makes the text invalid (then @a *step is the
 *         state before that byte)
 */
size_t ws_utf8_check (int *step, const unsigned char *s, size_t len);

/**
 * Copies @a len bytes from @a src to @a dst, unmasking them with @a key
 * (see ws_mask_copy; NULL: a plain copy), and validates the copy as
 * ws_utf8_check() does, in one pass.  @a dst and @a src must not overlap.
 * On an error the bytes of @a dst from the returned index on are
 * unspecified.
 *
 * @return as ws_utf8_check()
 */
size_t ws_utf8_unmask_check (int *step, unsigned char *dst,
                             const unsigned char *src, size_t len,
                             const uint8_t key[4], uint64_t offset);

/**
 * How many bytes are still missing from the sequence open in state
 * @a step (0 at a character boundary).
 */
unsigned ws_utf8_missing (int step);

/**
 * How many bytes of an unfinished sequence have been seen in state
 * @a step (0 at a character boundary, at most 3).
 */
unsigned ws_utf8_pending (int step);

#endif
