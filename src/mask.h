/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file mask.h
 * @brief RFC 6455 section 5.3 masking: payload XOR a 4-byte key.
 */
#ifndef WS_MASK_H
#define WS_MASK_H 1

#include <stddef.h>
#include <stdint.h>

/**
 * Copies @a len bytes from @a src to @a dst, XORing each with the masking
 * key byte for its position.  Masking is its own inverse, so this both
 * masks and unmasks.  @a dst and @a src may be equal but must not
 * otherwise overlap.
 *
 * @param key the 4-byte masking key, in wire order
 * @param offset the position of src[0] within the frame's payload (only
 *        offset % 4 matters), so that a payload may arrive in pieces
 */
void ws_mask_copy (void *dst, const void *src, size_t len, const uint8_t key[4],
                   uint64_t offset);

#endif
