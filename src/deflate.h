/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file deflate.h
 * @brief permessage-deflate (RFC 7692) on a stream: the zlib glue that
 *        the decoder and the encoders call when compression is enabled.
 *
 * The state is split in two halves that never touch each other: the
 * receiving half (inflate) belongs to the decoder, the sending half
 * (deflate) to the encoders, so that one thread may decode while
 * another encodes, as without compression.
 */
#ifndef WS_DEFLATE_H
#define WS_DEFLATE_H 1

#include "internal.h"

/** Compressed payload is unmasked in pieces of this size on the stack,
    and inflated output grows by at least this much. */
#define WS_PMD_CHUNK 4096

/** Messages up to this size get zlib's best compression by default. */
#define WS_PMD_BEST_UP_TO 1024
/** Messages up to this size are compressed with a small hash table. */
#define WS_PMD_SMALL_HASH_UP_TO 65536

/** Frees all compression state of @a ws (stream_free). */
void ws_pmd_free (struct MHD_WebSocketStream *ws);

/**
 * Inflates @a len payload bytes (already unmasked) of the compressed
 * message being received, appending the output to the message buffer,
 * validating text, and enforcing the payload limit.
 *
 * @param[out] used how many of the bytes zlib took (all, unless an
 *             error is returned)
 * @return OK, MEMORY_ERROR (the rest may be fed again), or an error that
 *         breaks the stream (PROTOCOL_ERROR for corrupt data,
 *         UTF8_ENCODING_ERROR, MAXIMUM_SIZE_EXCEEDED)
 */
enum MHD_WEBSOCKET_STATUS ws_pmd_inflate (struct MHD_WebSocketStream *ws,
                                          const uint8_t *in, size_t len,
                                          size_t *used);

/**
 * Ends the compressed message being received: inflates the
 * `00 00 ff ff` tail that the sender removed.  Same returns as
 * ws_pmd_inflate(); after MEMORY_ERROR it may be called again.
 */
enum MHD_WEBSOCKET_STATUS ws_pmd_inflate_end (struct MHD_WebSocketStream *ws);

/** The decoder is done with a message (handed out or dropped): the
    inflater is released, its window kept as history when the peer takes
    its context over. */
void ws_pmd_message_done (struct MHD_WebSocketStream *ws);

/**
 * Encodes a text or binary frame with compression as agreed.
 * @a first_byte is what the plain encoder would write (FIN and opcode).
 */
enum MHD_WEBSOCKET_STATUS ws_pmd_encode (struct MHD_WebSocketStream *ws,
                                         uint8_t first_byte, const char *data,
                                         size_t len, int fragmentation,
                                         char **frame, size_t *frame_len);

/**
 * How @a ws compresses what it sends, for the session layer, which
 * decides whether a broadcast's compressed frame suits it.
 *
 * @param[out] bits the window its compressor uses (9-15)
 * @param[out] context_takeover its compressor keeps context between
 *             messages
 * @param[out] min_size messages shorter than this are sent plain
 * @return false when the stream does not compress (never enabled, or
 *         level 0)
 */
bool ws_pmd_tx_params (const struct MHD_WebSocketStream *ws, int *bits,
                       bool *context_takeover, size_t *min_size);

#endif
