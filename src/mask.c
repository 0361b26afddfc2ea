/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file mask.c
 * @brief Fused copy and XOR with the masking key, a word at a time.
 */
#include "mask.h"

#include <string.h>

void
ws_mask_copy (void *dst, const void *src, size_t len, const uint8_t key[4],
              uint64_t offset)
{
  unsigned char *d = dst;
  const unsigned char *s = src;
  unsigned char k[12];
  uint64_t kw;
  size_t phase = (size_t) (offset & 3);
  size_t i;

  if (len < 8)
  {
    /* Too short for words: not worth setting them up. */
    for (i = 0; i < len; i++)
      d[i] = (unsigned char) (s[i] ^ key[(phase + i) & 3]);
    return;
  }
  /* Three copies of the key: the 8 bytes from `phase` on are the key
     rotated so that it starts with the byte for src[0].  Every word
     starts at a multiple of 4 from there, so the rotation stays right. */
  memcpy (k, key, 4);
  memcpy (k + 4, key, 4);
  memcpy (k + 8, key, 4);
  memcpy (&kw, k + phase, sizeof (kw));

  /* memcpy on fixed 8-byte words compiles to plain unaligned loads and
     stores; four per iteration let the compiler use vector registers. */
  while (len >= 32)
  {
    uint64_t w[4];
    memcpy (w, s, sizeof (w));
    w[0] ^= kw;
    w[1] ^= kw;
    w[2] ^= kw;
    w[3] ^= kw;
    memcpy (d, w, sizeof (w));
    s += 32;
    d += 32;
    len -= 32;
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
  for (i = 0; i < len; i++)
    d[i] = (unsigned char) (s[i] ^ k[phase + i]);
}
