/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file broadcast.h
 * @brief A message encoded once for many sessions: its plain frame and
 *        its standalone compressed frame, reference-counted across
 *        threads.  Also the internal invariant checks of the session
 *        layer.
 */
#ifndef WS_BROADCAST_H
#define WS_BROADCAST_H 1

#include "internal.h"

/* Debug builds (configure --enable-asserts, the sanitizer builds and the
   fuzzers) check internal invariants; other builds compile the checks
   away, as NDEBUG does for assert(). */
#ifdef WS_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define WS_ASSERT(cond)                                                        \
  do                                                                           \
  {                                                                            \
    if (! (cond))                                                              \
    {                                                                          \
      fprintf (stderr, "%s:%d: internal invariant broken: %s\n", __FILE__,     \
               __LINE__, #cond);                                               \
      abort ();                                                                \
    }                                                                          \
  } while (0)
#else
#define WS_ASSERT(cond) ((void) 0)
#endif

/* Broadcasts cross threads: their reference counts and the one-time
   creation of the compressed frame use the __atomic builtins (GCC 4.7,
   clang), which configure checks for. */
#define WS_ATOMIC_INC(p) ((void) __atomic_add_fetch ((p), 1, __ATOMIC_RELAXED))
/* True when this drop was the last reference. */
#define WS_ATOMIC_DEC_IS_LAST(p)                                               \
  (0 == __atomic_sub_fetch ((p), 1, __ATOMIC_ACQ_REL))
#define WS_ATOMIC_LOAD(p) __atomic_load_n ((p), __ATOMIC_ACQUIRE)
#define WS_ATOMIC_STORE(p, v) __atomic_store_n ((p), (v), __ATOMIC_RELEASE)
#define WS_ATOMIC_CAS(p, expected, desired)                                    \
  __atomic_compare_exchange_n ((p), (expected), (desired), false,              \
                               __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

/** Where the compressed frame of a broadcast stands. */
enum ws_bc_packed
{
  /** Not made yet (or a try ran out of memory: the next asker tries). */
  WS_BC_PACKED_NONE = 0,
  /** One thread is making it; the others send the plain frame. */
  WS_BC_PACKED_BUILDING = 1,
  /** Made: packed and packed_len are set. */
  WS_BC_PACKED_READY = 2,
  /** Compression does not pay for this message: always plain. */
  WS_BC_PACKED_NEVER = 3
};

struct MHD_WebSocketBroadcast
{
  /** References: the creator's, and one per queued frame. */
  unsigned int refs;
  MHD_WebSocketMallocCallback malloc_cb;
  MHD_WebSocketFreeCallback free_cb;
  bool binary;
  /** The unmasked, uncompressed frame (a server's frame). */
  char *plain;
  size_t plain_len;
  /** Where the payload starts in @e plain (its header's size). */
  size_t payload_off;
  /** The window (9-15) the compressed frame is made with: the smallest
      that holds the whole message, so that sessions with small agreed
      windows can take it too. */
  int bits;
  /** enum ws_bc_packed, read and written atomically. */
  int packed_state;
  /** The compressed frame, made with no context (standalone). */
  char *packed;
  size_t packed_len;
};

/** Takes one more reference (any thread). */
void ws_bc_ref (struct MHD_WebSocketBroadcast *bc);

/**
 * One thread's share of a broadcast: a single reference on the
 * broadcast, held for the frames of many sessions that this thread
 * alone runs (a loop's), which count their references here without
 * atomics.  Every session's frame taking and dropping its own atomic
 * reference made the threads that queue and write one broadcast fight
 * over the cache line of its count; with a share each thread touches
 * the broadcast's count twice per broadcast, not twice per session.
 * A share is made, used and dropped on one thread only.
 */
struct ws_bc_share
{
  struct MHD_WebSocketBroadcast *bc;
  /** The frames queued with this share, and the maker's own hold. */
  unsigned int refs;
};

/**
 * Makes a share of @a bc with its allocator, holding one reference of
 * the broadcast and the caller's hold on the share (drop it with
 * ws_bc_share_drop() when done handing out).  NULL when out of memory:
 * the caller then gives each frame a reference of its own.
 */
struct ws_bc_share *ws_bc_share_new (struct MHD_WebSocketBroadcast *bc);

/** Takes one more reference of @a sh (its thread only). */
void ws_bc_share_ref (struct ws_bc_share *sh);

/** Drops one reference of @a sh; the last frees it and drops its
    reference of the broadcast (its thread only). */
void ws_bc_share_drop (struct ws_bc_share *sh);

/**
 * The frame a server session should queue: the compressed one when
 * @a want_packed and it exists or can be made now (a failure to make it
 * is not an error: the plain frame is always right), else the plain.
 */
void ws_bc_frame (struct MHD_WebSocketBroadcast *bc, bool want_packed,
                  const char **frame, size_t *frame_len);

#endif
