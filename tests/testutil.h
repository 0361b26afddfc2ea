/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file testutil.h
 * @brief Shared helpers for the Check suites: a counting (and failing)
 *        allocator, a deterministic random generator, and a decode
 *        driver that feeds input in any split and records what comes out.
 */
#ifndef WS_TESTUTIL_H
#define WS_TESTUTIL_H 1

#include <stddef.h>
#include <stdint.h>
#include <check.h>
#include "microhttpd_ws.h"

/**
 * ck_assert for hot loops: Check writes the location of every ck_assert
 * that passes to its log, one system call each, which dominates loops of
 * millions of checks (and makes them crawl under sanitizers and
 * valgrind).  This one reports only a failure.
 */
#define TU_REQUIRE(cond)                                                       \
  do                                                                           \
  {                                                                            \
    if (! (cond))                                                              \
      ck_abort_msg ("%s:%d: '%s' failed", __FILE__, __LINE__, #cond);          \
  } while (0)

/* ------------------------------------------------------------ allocator */

/** Live allocations made through tu_malloc/tu_realloc. */
extern long tu_alloc_live;
/** Allocation calls so far (malloc and realloc). */
extern long tu_alloc_calls;
/** The largest single allocation requested so far. */
extern size_t tu_alloc_largest;
/** Successful realloc calls that changed the block's size (the ones
    that may move and copy it). */
extern long tu_alloc_resizes;
/** When >= 0, the allocation call with this index (counted from the
    last tu_alloc_reset) fails, and so does every later one if
    tu_alloc_fail_sticky is set. -1: never fail. */
extern long tu_alloc_fail_at;
extern int tu_alloc_fail_sticky;

void tu_alloc_reset (void);
void *tu_malloc (size_t len);
void *tu_realloc (void *buf, size_t len);
void tu_free (void *buf);

/* ------------------------------------------------------------ random */

/** Deterministic generator: writes bytes 0x11, 0x22, ... from a counter
    held in *(unsigned *) cls (or a fixed pattern when cls is NULL). */
size_t tu_rng (void *cls, void *buf, size_t len);
/** A generator that always fails (returns 0). */
size_t tu_rng_fail (void *cls, void *buf, size_t len);

/** A stream with the counting allocator and tu_rng; asserts success. */
struct MHD_WebSocketStream *tu_stream (int flags, size_t max_payload);

/** Frees @a ws (asserting success) and asserts that nothing allocated
    through the counting allocator remains. */
void tu_stream_end (struct MHD_WebSocketStream *ws);

/* ------------------------------------------------------------ decoding */

/** One thing MHD_websocket_decode returned. */
struct tu_event
{
  int status;
  /** A copy of the payload (malloc'd, NUL-terminated), or NULL. */
  char *payload;
  size_t len;
  /** For errors: the absolute input offset of the revealing byte. */
  size_t offset;
};

#define TU_MAX_EVENTS 64

struct tu_result
{
  struct tu_event ev[TU_MAX_EVENTS];
  size_t count;
  /** Validity of the stream after the input was fed. */
  int validity;
  /** Total bytes consumed. */
  size_t consumed;
};

/**
 * Feeds @a data to a fresh stream (tu_stream (flags, max)) in chunks:
 * the first of @a first bytes, then pieces of at most @a step bytes
 * (step 0: all the rest at once).  Every return other than OK is
 * recorded; feeding stops at the first error, which is recorded with its
 * absolute offset.  Checks on every call that the outputs are coherent
 * (read length within the input, payload NUL-terminated, NULL exactly
 * when empty) and that the stream frees everything.
 */
void tu_decode (struct tu_result *r, int flags, size_t max, const void *data,
                size_t len, size_t first, size_t step);

/** Frees the payload copies in @a r. */
void tu_result_free (struct tu_result *r);

/**
 * Decodes @a data whole, then split at every offset into two pieces,
 * then one byte per call, and asserts that every way gives the same
 * events (status, payload bytes, error offset) and the same final
 * validity.  Leaves the whole-input result in @a r.
 */
void tu_decode_every_split (struct tu_result *r, int flags, size_t max,
                            const void *data, size_t len);

/** Asserts that @a r holds exactly one event with this status and
    payload (payload may be NULL for an empty one). */
void tu_expect_one (const struct tu_result *r, int status, const void *payload,
                    size_t len);

/* ------------------------------------------------------------ frames */

/**
 * Writes a frame into @a out (which must hold len + 14 bytes): first
 * byte @a b0 (FIN/RSV/opcode), the shortest length encoding, and, when
 * @a mask is non-NULL, that masking key with the payload masked.
 * @return the frame's size
 */
size_t tu_frame (void *out, unsigned b0, const void *payload, size_t len,
                 const uint8_t *mask);

/* ------------------------------------------------------------ fences */

/**
 * Memory whose outside cannot be touched: pages that fault on any access
 * lie on both sides of one read-write area, so that a word-wide read or
 * write just outside [p, p + len) crashes the test instead of going
 * unnoticed.  Without mmap, an exact-size malloc lets AddressSanitizer
 * builds catch the same.
 */
struct tu_fence
{
  unsigned char *map;
  unsigned char *area;
  size_t page;
  size_t area_size;
};

/** Maps a fenced area that holds at least @a max_len bytes. */
void tu_fence_init (struct tu_fence *f, size_t max_len);

/** A @a len-byte region that ends right at the fence (@a at_end) or
    starts right after it.  With at_end and len 0, the returned pointer
    is the first byte of the trailing fence (when mmap is available). */
unsigned char *tu_fence_place (struct tu_fence *f, size_t len, int at_end);

void tu_fence_free (struct tu_fence *f);

#endif
