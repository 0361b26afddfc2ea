/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file internal.h
 * @brief The private stream struct, shared by the stream, decode and
 *        encode modules.
 *
 * The source files form layers: a file calls functions of its own layer
 * or of layers below it, never above, and no calls go round in a circle.
 * tests/test_layers.sh reads the list below (keep its format: "layer N:"
 * lines, bottom first; a layer may take several) and checks it against the
 * symbols each object file defines and uses.
 *
 *   layer 0: mask.c mask_x86.c utf8.c utf8_x86.c
 *   layer 0: close.c extension.c handshake.c
 *   layer 1: cpu.c
 *   layer 2: frame.c
 *   layer 3: deflate.c
 *   layer 4: decode.c encode.c
 *   layer 5: stream.c
 *   layer 6: broadcast.c
 *   layer 7: session.c
 *   layer 8: loop.c
 *   layer 9: upgrade.c
 *
 * Layer 0 holds the kernels (unmasking, UTF-8: portable and SIMD
 * variants) and the parts that need no stream state; cpu.c alone picks
 * a kernel for this CPU; frame.c writes frame headers and owns the
 * message buffer's allocation; deflate.c compresses and inflates through
 * frame.c; the codecs sit on all of these, and stream.c creates and
 * frees what they use.  Above the codec, the serving layers: broadcast.c
 * (frames encoded once, shared by reference), session.c (one
 * connection, without I/O), loop.c (threads and sockets running
 * sessions) and upgrade.c (libmicrohttpd's side: the handshake answer
 * and the upgraded socket handed to a loop).
 */
#ifndef WS_INTERNAL_H
#define WS_INTERNAL_H 1

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The library is built with -fvisibility=hidden; only the public API,
   declared with _MHD_EXTERN, is exported. */
#if defined(__GNUC__) && ! defined(_MHD_EXTERN)
#define _MHD_EXTERN extern __attribute__ ((visibility ("default")))
#endif
#include "microhttpd_ws.h"

/** Keeps a cold function out of its hot caller. */
#if defined(__GNUC__)
#define WS_NOINLINE __attribute__ ((noinline))
#else
#define WS_NOINLINE
#endif

/** Asks the CPU for the cache line at @a p ahead of its use (a hint:
    no fault, whatever @a p is). */
#if defined(__GNUC__)
#define WS_PREFETCH(p) __builtin_prefetch (p)
#else
#define WS_PREFETCH(p) ((void) (p))
#endif

#include "frame.h"

/** Where the decoder stands between two calls. */
enum ws_decode_state
{
  /** Reading a frame header (hdr_have bytes of it are in hdr). */
  WS_DECODE_HEADER = 0,
  /** Reading the payload of the frame described by `frame`. */
  WS_DECODE_PAYLOAD = 1
};

struct MHD_WebSocketStream
{
  /* --- set by init, read-only afterwards (encoders use only these) --- */
  MHD_WebSocketMallocCallback malloc_cb;
  MHD_WebSocketReallocCallback realloc_cb;
  MHD_WebSocketFreeCallback free_cb;
  MHD_WebSocketRandomNumberGenerator rng_cb;
  void *rng_cls;
  /** MHD_WEBSOCKET_FLAG_* bits. */
  int flags;
  /** The mask bit (WS_MASK_BIT or 0) that frames this stream decodes
      must carry: set for a server, clear for a client. */
  uint8_t want_mask_bit;
  /** Largest payload or reassembled message: max_payload_size, or
      UINT64_MAX for no limit (one comparison either way). */
  uint64_t payload_limit;

  /* --- decoder state: only MHD_websocket_decode touches it --- */
  enum MHD_WEBSOCKET_VALIDITY validity;
  enum ws_decode_state state;
  /** Header bytes received so far when a header arrives split. */
  uint8_t hdr[WS_MAX_HEADER_SIZE];
  uint8_t hdr_have;

  /** The frame being read. */
  struct ws_frame_header frame;
  /** Payload bytes of that frame received so far. */
  uint64_t frame_have;

  /** Opcode of the open data message (text/binary), 0 when none. */
  uint8_t msg_opcode;
  /** With WANT_FRAGMENTS: a fragment of this message was returned. */
  bool msg_fragment_returned;
  /** The current data frame has bytes and has not yet had the
      allocator call that the original made at its header. */
  bool msg_grow_due;
  /** UTF-8 state of the open text message (MHD_WEBSOCKET_UTF8STEP_*). */
  int msg_utf8;
  /** The data payload being assembled; owned until handed out.  When
      msg_buf is NULL but msg_len is not 0, those bytes are in `held`. */
  char *msg_buf;
  size_t msg_len;
  size_t msg_cap;
  /** The decoder's fast path may fill msg_buf up to here without an
      allocator call: msg_cap once the frame had its call, otherwise 0
      (no buffer, a call due, or a compressed message). */
  size_t msg_room;
  /** WANT_FRAGMENTS: the start of a UTF-8 sequence that a fragment
      boundary cut, held back for the next fragment. */
  char held[4];

  /** Payload of the control frame being read (at most 125 bytes). */
  char ctrl[WS_MAX_CONTROL_PAYLOAD];
  /** UTF-8 state of a close frame's reason text. */
  int ctrl_utf8;

  /* --- permessage-deflate (deflate.c); NULL when not enabled --- */
  struct ws_pmd *pmd;
  /** Decoder: the open data message is compressed. */
  bool msg_compressed;
};

/** Allocates through the stream's callbacks; NULL on failure. */
static inline void *
ws_malloc (const struct MHD_WebSocketStream *ws, size_t len)
{
  return ws->malloc_cb (len);
}

static inline void
ws_free (const struct MHD_WebSocketStream *ws, void *buf)
{
  if (NULL != buf)
    ws->free_cb (buf);
}

/** Frees the data message being assembled and forgets it (decode.c). */
void ws_decode_drop_message (struct MHD_WebSocketStream *ws);

#endif
