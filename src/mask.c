/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file mask.c
 * @brief Fused copy and XOR with the masking key: the portable variant,
 *        a machine word at a time.  cpu.c chooses between it and the
 *        SIMD variants (ws_mask_copy is defined there).
 */
#include "mask.h"
#include "cpu.h"

#include <string.h>

void
ws_mask_copy_portable (void *dst, const void *src, size_t len,
                       const uint8_t key[4], uint64_t offset)
{
  unsigned char *d = dst;
  const unsigned char *s = src;
  uint32_t k32;
  uint64_t kw;

  if (len < 8)
  {
    ws_mask_bytes (d, s, len, key, offset);
    return;
  }
  if (len >= 64)
  {
    /* Aligned stores go faster: bytes up to a 16-byte boundary of dst
       first. */
    size_t head = (size_t) (-(uintptr_t) d) & 15;
    ws_mask_bytes (d, s, head, key, offset);
    d += head;
    s += head;
    len -= head;
    offset += head;
  }
  /* The key rotated so that it starts with the byte for src[0]; every
     word starts at a multiple of 4 from there, so the rotation stays
     right. */
  k32 = ws_mask_word (key, offset);
  kw = ((uint64_t) k32 << 32) | k32;

  /* memcpy on fixed 8-byte words compiles to plain unaligned loads and
     stores; eight per iteration let the compiler use vector registers. */
  while (len >= 64)
  {
    uint64_t w[8];
    memcpy (w, s, sizeof (w));
    w[0] ^= kw;
    w[1] ^= kw;
    w[2] ^= kw;
    w[3] ^= kw;
    w[4] ^= kw;
    w[5] ^= kw;
    w[6] ^= kw;
    w[7] ^= kw;
    memcpy (d, w, sizeof (w));
    s += 64;
    d += 64;
    len -= 64;
  }
  while (len >= 8)
  {
    uint64_t w;
    memcpy (&w, s, sizeof (w));
    w ^= kw;
    memcpy (d, &w, sizeof (w));
    s += 8;
    d += 8;
    len -= 8;
  }
  /* The remaining bytes start at a multiple of 8 from src[0]. */
  ws_mask_bytes (d, s, len, key, offset);
}
