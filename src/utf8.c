/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file utf8.c
 * @brief Incremental UTF-8 validation as a table-driven DFA, with a
 *        word-at-a-time skip over ASCII.
 *
 * The DFA's states are the public MHD_WEBSOCKET_UTF8STEP values, plus
 * one error state.  Each byte is first mapped to one of 12 classes
 * (RFC 3629 section 4 distinguishes exactly these ranges), then the
 * class and the state select the next state.
 */
#include "internal.h"
#include "utf8.h"

#include <string.h>

/* Byte classes. */
enum
{
  C_ASCII,    /* 00..7F */
  C_TAIL_LO,  /* 80..8F */
  C_TAIL_MID, /* 90..9F */
  C_TAIL_HI,  /* A0..BF */
  C_BAD,      /* C0, C1, F5..FF: never in UTF-8 */
  C_LEAD2,    /* C2..DF */
  C_E0,       /* E0: tail A0..BF (no overlongs) */
  C_LEAD3,    /* E1..EC, EE..EF */
  C_ED,       /* ED: tail 80..9F (no surrogates) */
  C_F0,       /* F0: tail 90..BF (no overlongs) */
  C_LEAD4,    /* F1..F3 */
  C_F4,       /* F4: tail 80..8F (nothing above U+10FFFF) */
  C_COUNT
};

/* The tables are laid out by hand, a row per 16 bytes or per state. */
/* clang-format off */
static const uint8_t byte_class[256] = {
  /* 00..7F */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  /* 80..8F */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  /* 90..9F */
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  /* A0..BF */
  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
  /* C0..DF */
  4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
  5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
  /* E0..EF */
  6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
  /* F0..FF */
  9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4};

/* The error state follows the eleven public steps. */
#define S_ERR 11

/* Short names for the public steps, for the table's sake. */
#define S_NORMAL MHD_WEBSOCKET_UTF8STEP_NORMAL
#define S_2T1 MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1
#define S_3E0 MHD_WEBSOCKET_UTF8STEP_UTF3TAIL1_1OF2
#define S_3ED MHD_WEBSOCKET_UTF8STEP_UTF3TAIL2_1OF2
#define S_3T1 MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2
#define S_3T2 MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2
#define S_4F0 MHD_WEBSOCKET_UTF8STEP_UTF4TAIL1_1OF3
#define S_4F4 MHD_WEBSOCKET_UTF8STEP_UTF4TAIL2_1OF3
#define S_4T1 MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_1OF3
#define S_4T2 MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3
#define S_4T3 MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3

#define E S_ERR
static const uint8_t next_state[S_ERR][C_COUNT] = {
  /*              ASCII     TLO       TMID      THI       BAD LEAD2  E0     LEAD3  ED     F0     LEAD4  F4 */
  [S_NORMAL] = {S_NORMAL, E,        E,        E,        E,  S_2T1, S_3E0, S_3T1, S_3ED, S_4F0, S_4T1, S_4F4},
  [S_2T1] =    {E,        S_NORMAL, S_NORMAL, S_NORMAL, E,  E,     E,     E,     E,     E,     E,     E},
  [S_3E0] =    {E,        E,        E,        S_3T2,    E,  E,     E,     E,     E,     E,     E,     E},
  [S_3ED] =    {E,        S_3T2,    S_3T2,    E,        E,  E,     E,     E,     E,     E,     E,     E},
  [S_3T1] =    {E,        S_3T2,    S_3T2,    S_3T2,    E,  E,     E,     E,     E,     E,     E,     E},
  [S_3T2] =    {E,        S_NORMAL, S_NORMAL, S_NORMAL, E,  E,     E,     E,     E,     E,     E,     E},
  [S_4F0] =    {E,        E,        S_4T2,    S_4T2,    E,  E,     E,     E,     E,     E,     E,     E},
  [S_4F4] =    {E,        S_4T2,    E,        E,        E,  E,     E,     E,     E,     E,     E,     E},
  [S_4T1] =    {E,        S_4T2,    S_4T2,    S_4T2,    E,  E,     E,     E,     E,     E,     E,     E},
  [S_4T2] =    {E,        S_4T3,    S_4T3,    S_4T3,    E,  E,     E,     E,     E,     E,     E,     E},
  [S_4T3] =    {E,        S_NORMAL, S_NORMAL, S_NORMAL, E,  E,     E,     E,     E,     E,     E,     E},
};
#undef E
/* clang-format on */

#define HIGH_BITS UINT64_C (0x8080808080808080)

size_t
ws_utf8_check (int *step, const unsigned char *s, size_t len)
{
  unsigned state = (unsigned) *step;
  size_t i = 0;

  while (i < len)
  {
    size_t stop;
    /* At a character boundary, skip ASCII a word at a time. */
    if (S_NORMAL == state)
    {
      while (len - i >= 8)
      {
        uint64_t w;
        memcpy (&w, s + i, sizeof (w));
        if (0 != (w & HIGH_BITS))
          break;
        i += 8;
      }
    }
    /* Then walk at least a word's worth through the DFA before trying
       the word skip again, so that mixed text does not pay for it on
       every character. */
    stop = (len - i > 16) ? i + 16 : len;
    for (; i < stop; i++)
    {
      unsigned next = next_state[state][byte_class[s[i]]];
      if (S_ERR == next)
      {
        *step = (int) state;
        return i;
      }
      state = next;
    }
  }
  *step = (int) state;
  return len;
}

unsigned
ws_utf8_pending (int step)
{
  switch (step)
  {
  case MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2:
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3:
    return 2;
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3:
    return 3;
  case MHD_WEBSOCKET_UTF8STEP_NORMAL:
    return 0;
  default:
    /* A lead byte and nothing after it. */
    return 1;
  }
}
