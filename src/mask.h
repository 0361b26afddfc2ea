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
#include <string.h>

/**
 * Copies @a len bytes from @a src to @a dst, XORing each with the masking
 * key byte for its position.  Masking is its own inverse, so this both
 * masks and unmasks.  @a dst and @a src may be equal but must not
 * otherwise overlap.  Uses the best variant for this CPU (cpu.h).
 *
 * @param key the 4-byte masking key, in wire order
 * @param offset the position of src[0] within the frame's payload (only
 *        offset % 4 matters), so that a payload may arrive in pieces
 */
void ws_mask_copy (void *dst, const void *src, size_t len, const uint8_t key[4],
                   uint64_t offset);

/** The key as a 32-bit word in memory order, rotated so that its first
    byte is the one for payload position @a offset. */
static inline uint32_t
ws_mask_word (const uint8_t key[4], uint64_t offset)
{
  unsigned shift = 8 * (unsigned) (offset & 3);
  uint32_t w;

  memcpy (&w, key, 4);
  if (0 == shift)
    return w;
    /* Starting later in the key is a rotation of the word: towards the
     low end of memory, whichever end of the word that is. */
#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
  return (w << shift) | (w >> (32 - shift));
#elif defined(__BYTE_ORDER__) && (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
  return (w >> shift) | (w << (32 - shift));
#else
  {
    uint8_t k[8];
    memcpy (k, key, 4);
    memcpy (k + 4, key, 4);
    memcpy (&w, k + (offset & 3), 4);
    return w;
  }
#endif
}

/** Byte-wise masking for short pieces, where setting up words costs more
    than it saves. */
static inline void
ws_mask_bytes (uint8_t *d, const uint8_t *s, size_t len, const uint8_t key[4],
               uint64_t offset)
{
  size_t i;
  for (i = 0; i < len; i++)
    d[i] = (uint8_t) (s[i] ^ key[(offset + i) & 3]);
}

/** Short pieces in 8-byte words without the dispatch: a small frame's
    whole payload, or the few bytes a call brings. */
static inline void
ws_mask_small (uint8_t *d, const uint8_t *s, size_t len, const uint8_t key[4],
               uint64_t offset)
{
  if (len >= 8)
  {
    uint64_t k = ws_mask_word (key, offset);
    uint64_t w[2];
    k |= k << 32;
    /* Two words a step; the last whole step apart from the loop, so
       that a 16-byte payload (a common small frame) runs no loop. */
    for (; len >= 32; len -= 16, d += 16, s += 16)
    {
      memcpy (w, s, 16);
      w[0] ^= k;
      w[1] ^= k;
      memcpy (d, w, 16);
    }
    if (len >= 16)
    {
      memcpy (w, s, 16);
      w[0] ^= k;
      w[1] ^= k;
      memcpy (d, w, 16);
      d += 16;
      s += 16;
      len -= 16;
    }
    if (len >= 8)
    {
      memcpy (w, s, 8);
      w[0] ^= k;
      memcpy (d, w, 8);
      d += 8;
      s += 8;
      len -= 8;
    }
  }
  /* Whole words kept the phase. */
  if (0 != len)
    ws_mask_bytes (d, s, len, key, offset);
}

#endif
