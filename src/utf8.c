/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file utf8.c
 * @brief Incremental UTF-8 validation: the portable DFA (with a
 *        word-at-a-time skip over ASCII) and unmasking fused with
 *        validation.  cpu.c chooses between them and the SIMD variants
 *        (ws_utf8_check and ws_utf8_unmask_check are defined there).
 *
 * Each byte is first mapped to one of 12 classes (RFC 3629 section 4
 * distinguishes exactly these ranges); the class selects the row of a
 * shift DFA (below).  The state carried between calls is the public
 * MHD_WEBSOCKET_UTF8STEP value.
 */
#include "internal.h"
#include "cpu.h"
#include "mask.h"
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

/* The number of public steps. */
#define N_STEPS 11

/* Short names for the public steps. */
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

/* clang-format on */

#define HIGH_BITS UINT64_C (0x8080808080808080)

/*
 * The bulk of the text goes through a second, smaller DFA in the "shift"
 * form: the nine states of the minimal UTF-8 automaton are bit offsets
 * (multiples of 6) into a 64-bit row per byte class, and the row holds
 * at each state's offset the offset of the next state.  A step is then
 * `state = row >> state`: the row does not depend on the state, so the
 * only chain from byte to byte is one shift, where the table DFA above
 * chains two dependent loads.  Its states lose which of the public steps
 * the text is in (UTF2TAIL_1OF1, UTF3TAIL_2OF2 and UTF4TAIL_3OF3 all wait
 * for one last byte); public_step() recovers that from the last bytes.
 */
enum
{
  M_OK = 0,  /* at a character boundary */
  M_ERR = 6, /* absorbing */
  M_T1 = 12, /* one continuation byte missing */
  M_T2 = 18, /* two missing */
  M_T3 = 24, /* three missing */
  M_E0 = 30, /* after E0: A0..BF, then one more */
  M_ED = 36, /* after ED: 80..9F, then one more */
  M_F0 = 42, /* after F0: 90..BF, then two more */
  M_F4 = 48  /* after F4: 80..8F, then two more */
};

/* Row entry: from state @a f, go to state @a t. */
#define GO(f, t) ((uint64_t) (t) << (f))
/* Every state not named goes to M_ERR: the rows below name M_ERR's
   offset for each state they leave out. */
#define REST_ERR(named)                                                        \
  (((GO (M_OK, M_ERR) | GO (M_ERR, M_ERR) | GO (M_T1, M_ERR)                   \
     | GO (M_T2, M_ERR) | GO (M_T3, M_ERR) | GO (M_E0, M_ERR)                  \
     | GO (M_ED, M_ERR) | GO (M_F0, M_ERR) | GO (M_F4, M_ERR)))                \
   & ~(named))
#define FIELD(st) GO (st, 63)

static const uint64_t shift_row[C_COUNT] = {
  /* C_ASCII */
  GO (M_OK, M_OK) | REST_ERR (FIELD (M_OK)),
  /* C_TAIL_LO: 80..8F */
  GO (M_T1, M_OK) | GO (M_T2, M_T1) | GO (M_T3, M_T2) | GO (M_ED, M_T1)
    | GO (M_F4, M_T2)
    | REST_ERR (FIELD (M_T1) | FIELD (M_T2) | FIELD (M_T3) | FIELD (M_ED)
                | FIELD (M_F4)),
  /* C_TAIL_MID: 90..9F */
  GO (M_T1, M_OK) | GO (M_T2, M_T1) | GO (M_T3, M_T2) | GO (M_ED, M_T1)
    | GO (M_F0, M_T2)
    | REST_ERR (FIELD (M_T1) | FIELD (M_T2) | FIELD (M_T3) | FIELD (M_ED)
                | FIELD (M_F0)),
  /* C_TAIL_HI: A0..BF */
  GO (M_T1, M_OK) | GO (M_T2, M_T1) | GO (M_T3, M_T2) | GO (M_E0, M_T1)
    | GO (M_F0, M_T2)
    | REST_ERR (FIELD (M_T1) | FIELD (M_T2) | FIELD (M_T3) | FIELD (M_E0)
                | FIELD (M_F0)),
  /* C_BAD */
  REST_ERR (0),
  /* C_LEAD2 */
  GO (M_OK, M_T1) | REST_ERR (FIELD (M_OK)),
  /* C_E0 */
  GO (M_OK, M_E0) | REST_ERR (FIELD (M_OK)),
  /* C_LEAD3 */
  GO (M_OK, M_T2) | REST_ERR (FIELD (M_OK)),
  /* C_ED */
  GO (M_OK, M_ED) | REST_ERR (FIELD (M_OK)),
  /* C_F0 */
  GO (M_OK, M_F0) | REST_ERR (FIELD (M_OK)),
  /* C_LEAD4 */
  GO (M_OK, M_T3) | REST_ERR (FIELD (M_OK)),
  /* C_F4 */
  GO (M_OK, M_F4) | REST_ERR (FIELD (M_OK)),
};
#undef GO
#undef REST_ERR
#undef FIELD

/** The shift DFA's state for a public step. */
static unsigned
min_state (int step)
{
  static const uint8_t map[N_STEPS] = {
    [S_NORMAL] = M_OK, [S_2T1] = M_T1, [S_3E0] = M_E0, [S_3ED] = M_ED,
    [S_3T1] = M_T2,    [S_3T2] = M_T1, [S_4F0] = M_F0, [S_4F4] = M_F4,
    [S_4T1] = M_T3,    [S_4T2] = M_T2, [S_4T3] = M_T1
  };
  return map[step];
}

static bool
is_cont (unsigned char b)
{
  return 0x80 == (b & 0xC0);
}

/**
 * The public step for shift state @a m (not M_ERR) after the @a n bytes
 * at @a s, the text having started this call in public step @a from:
 * the bytes of the open sequence tell its length where they are in
 * @a s; otherwise @a from does.
 */
static int
public_step (unsigned m, const unsigned char *s, size_t n, int from)
{
  bool from4 = (from >= S_4F0);

  switch (m)
  {
  case M_OK:
    return S_NORMAL;
  case M_E0:
    return S_3E0;
  case M_ED:
    return S_3ED;
  case M_F0:
    return S_4F0;
  case M_F4:
    return S_4F4;
  case M_T3:
    return S_4T1;
  case M_T2:
    if (0 == n)
      return from;
    /* a 3-byte lead just now, or a 4-byte lead and one tail */
    return is_cont (s[n - 1]) ? S_4T2 : S_3T1;
  default: /* M_T1 */
    if (0 == n)
      return from;
    if (! is_cont (s[n - 1]))
      return S_2T1;
    if (n >= 2)
      return is_cont (s[n - 2]) ? S_4T3 : S_3T2;
    return from4 ? S_4T3 : S_3T2;
  }
}

/** Bytes walked through the DFA between two checks for the error
    state. */
#define DFA_RUN 32

size_t
ws_utf8_check_portable (int *step, const unsigned char *s, size_t len)
{
  int from = *step;
  uint64_t m = min_state (from);
  size_t i = 0;

  while (i < len)
  {
    size_t at;
    size_t stop;
    uint64_t start;

    /* At a character boundary, skip ASCII a word at a time. */
    if (M_OK == m)
    {
      /* Four words per test while the text stays ASCII. */
      while (len - i >= 32)
      {
        uint64_t w[4];
        memcpy (w, s + i, sizeof (w));
        if (0 != ((w[0] | w[1] | w[2] | w[3]) & HIGH_BITS))
          break;
        i += 32;
      }
      while (len - i >= 8)
      {
        uint64_t w;
        memcpy (&w, s + i, sizeof (w));
        if (0 != (w & HIGH_BITS))
          break;
        i += 8;
      }
    }
    /* Then a run with no test per byte: the error state is absorbing,
       so one test after the run tells.  Only then is the run walked
       again, testing each byte, to find the exact one.  The low 6 bits
       of m are the state; the shift ignores the rest. */
    at = i;
    start = m;
    stop = (len - i > DFA_RUN) ? i + DFA_RUN : len;
    for (; i + 4 <= stop; i += 4)
    {
      m = shift_row[byte_class[s[i]]] >> (m & 63);
      m = shift_row[byte_class[s[i + 1]]] >> (m & 63);
      m = shift_row[byte_class[s[i + 2]]] >> (m & 63);
      m = shift_row[byte_class[s[i + 3]]] >> (m & 63);
    }
    for (; i < stop; i++)
      m = shift_row[byte_class[s[i]]] >> (m & 63);
    m &= 63;
    if (M_ERR == m)
    {
      m = start;
      for (i = at;; i++)
      {
        uint64_t next = (shift_row[byte_class[s[i]]] >> m) & 63;
        if (M_ERR == next)
        {
          *step = public_step ((unsigned) m, s, i, from);
          return i;
        }
        m = next;
      }
    }
  }
  *step = public_step ((unsigned) m, s, len, from);
  return len;
}

/** Unmasking and validating in blocks that stay in the L1 cache between
    the two steps. */
#define FUSE_BLOCK 4096

size_t
ws_utf8_unmask_check_portable (int *step, unsigned char *dst,
                               const unsigned char *src, size_t len,
                               const uint8_t key[4], uint64_t offset)
{
  size_t done = 0;

  while (done < len)
  {
    size_t n = (len - done > FUSE_BLOCK) ? FUSE_BLOCK : len - done;
    size_t ok;

    if (NULL != key)
      ws_mask_copy_portable (dst + done, src + done, n, key, offset + done);
    else
      memcpy (dst + done, src + done, n);
    ok = ws_utf8_check_portable (step, dst + done, n);
    if (ok != n)
      return done + ok;
    done += n;
  }
  return len;
}

unsigned
ws_utf8_missing (int step)
{
  switch (step)
  {
  case MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1:
  case MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2:
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3:
    return 1;
  case MHD_WEBSOCKET_UTF8STEP_UTF3TAIL1_1OF2:
  case MHD_WEBSOCKET_UTF8STEP_UTF3TAIL2_1OF2:
  case MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2:
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3:
    return 2;
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL1_1OF3:
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL2_1OF3:
  case MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_1OF3:
    return 3;
  default:
    return 0;
  }
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
