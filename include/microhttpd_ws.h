/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers

  libmicrohttpd_ws is free software; you can redistribute it and/or
  modify it under the terms of the GNU Lesser General Public
  License as published by the Free Software Foundation; either
  version 2.1 of the License, or (at your option) any later version.

  libmicrohttpd_ws is distributed in the hope that it will be useful,
  but WITHOUT ANY WARRANTY; without even the implied warranty of
  MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
  Lesser General Public License for more details.

  You should have received a copy of the GNU Lesser General Public
  License along with this library; if not, see
  <https://www.gnu.org/licenses/>.
*/

/**
 * @file microhttpd_ws.h
 * @brief WebSocket (RFC 6455) support for GNU libmicrohttpd servers.
 *
 * A drop-in implementation of the WebSocket helper API that libmicrohttpd
 * shipped as an experimental add-on.  It has two parts:
 *
 * - handshake helpers, used in the access handler to decide whether a
 *   request is a valid WebSocket upgrade and to compute the
 *   `Sec-WebSocket-Accept` value;
 * - a stream codec, used in the upgrade handler on the raw socket: an
 *   incremental frame decoder and a set of frame encoders.
 *
 * The codec never touches a socket: the application reads bytes, feeds
 * them to #MHD_websocket_decode(), and writes the frames that the
 * `MHD_websocket_encode_*` functions return.  Every buffer returned by the
 * library is released with #MHD_websocket_free().
 *
 * The header can be included with or without `microhttpd.h` before it.
 */
/* The public header is laid out by hand, like microhttpd.h. */
/* clang-format off */
#ifndef MHD_WEBSOCKET_H
#define MHD_WEBSOCKET_H 1

#include <stddef.h>

#ifdef __cplusplus
extern "C"
{
#if 0 /* keep editors' and formatters' indentation flat */
}
#endif
#endif

/* microhttpd.h defines this; the header must also stand alone. */
#ifndef _MHD_EXTERN
#define _MHD_EXTERN extern
#endif

/**
 * Flags for #MHD_websocket_stream_init() and #MHD_websocket_stream_init2(),
 * combined with bitwise OR.
 */
enum MHD_WEBSOCKET_FLAG
{
  /**
   * The stream is the server side: received frames must be masked, sent
   * frames are not.  This is the default.
   */
  MHD_WEBSOCKET_FLAG_SERVER = 0,
  /**
   * The stream is the client side: received frames must not be masked,
   * sent frames are masked with random bytes from the stream's random
   * number generator (so only #MHD_websocket_stream_init2() can create
   * one).
   */
  MHD_WEBSOCKET_FLAG_CLIENT = 1,
  /**
   * Fragmented messages are reassembled and returned once, whole.
   * This is the default.
   */
  MHD_WEBSOCKET_FLAG_NO_FRAGMENTS = 0,
  /**
   * Each fragment of a fragmented message is returned as it completes
   * (see the `*_FRAGMENT` statuses).  Text fragments are cut at character
   * boundaries: an unfinished UTF-8 sequence is held back and returned
   * with the next fragment.
   */
  MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS = 2,
  /**
   * When decoding fails, #MHD_websocket_decode() also returns, in its
   * payload argument, a close frame ready to be sent to the peer (code
   * 1002, 1007 or 1009, depending on the error).
   */
  MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR = 4
};

/**
 * The `fragmentation` argument of #MHD_websocket_encode_text() and
 * #MHD_websocket_encode_binary().
 */
enum MHD_WEBSOCKET_FRAGMENTATION
{
  /** An unfragmented message: one frame with the FIN bit. */
  MHD_WEBSOCKET_FRAGMENTATION_NONE = 0,
  /** The first fragment: text/binary opcode, no FIN bit. */
  MHD_WEBSOCKET_FRAGMENTATION_FIRST = 1,
  /** A middle fragment: continuation opcode, no FIN bit. */
  MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING = 2,
  /** The last fragment: continuation opcode with the FIN bit. */
  MHD_WEBSOCKET_FRAGMENTATION_LAST = 3
};

/**
 * Status codes returned by the library.  Values above zero name what
 * #MHD_websocket_decode() returned (the low nibble is the frame's
 * opcode); values below zero are errors.
 */
enum MHD_WEBSOCKET_STATUS
{
  /** Success; for decoding: all input consumed, nothing complete yet. */
  MHD_WEBSOCKET_STATUS_OK = 0,
  /** A complete text message (or unfragmented text frame). */
  MHD_WEBSOCKET_STATUS_TEXT_FRAME = 0x1,
  /** A complete binary message (or unfragmented binary frame). */
  MHD_WEBSOCKET_STATUS_BINARY_FRAME = 0x2,
  /**
   * A close frame.  Its payload, if any, is split into code and reason
   * by #MHD_websocket_split_close_reason().  After it, the stream only
   * accepts control frames.
   */
  MHD_WEBSOCKET_STATUS_CLOSE_FRAME = 0x8,
  /** A ping frame: answer it with a pong carrying the same payload. */
  MHD_WEBSOCKET_STATUS_PING_FRAME = 0x9,
  /** A pong frame. */
  MHD_WEBSOCKET_STATUS_PONG_FRAME = 0xA,
  /** The first fragment of a text message (#MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS). */
  MHD_WEBSOCKET_STATUS_TEXT_FIRST_FRAGMENT = 0x11,
  /** The first fragment of a binary message (#MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS). */
  MHD_WEBSOCKET_STATUS_BINARY_FIRST_FRAGMENT = 0x12,
  /** A middle fragment of a text message (#MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS). */
  MHD_WEBSOCKET_STATUS_TEXT_NEXT_FRAGMENT = 0x21,
  /** A middle fragment of a binary message (#MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS). */
  MHD_WEBSOCKET_STATUS_BINARY_NEXT_FRAGMENT = 0x22,
  /** The last fragment of a text message (#MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS). */
  MHD_WEBSOCKET_STATUS_TEXT_LAST_FRAGMENT = 0x41,
  /** The last fragment of a binary message (#MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS). */
  MHD_WEBSOCKET_STATUS_BINARY_LAST_FRAGMENT = 0x42,
  /** The peer broke RFC 6455; the stream is now invalid.  Close with 1002. */
  MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR = -1,
  /** The stream was invalidated by an earlier error; nothing more decodes. */
  MHD_WEBSOCKET_STATUS_STREAM_BROKEN = -2,
  /** An allocation failed.  The stream stays usable: retry later. */
  MHD_WEBSOCKET_STATUS_MEMORY_ERROR = -3,
  /** An argument was invalid (NULL pointer, unknown flag, ...). */
  MHD_WEBSOCKET_STATUS_PARAMETER_ERROR = -4,
  /** A payload exceeds the allowed size.  Close with 1009. */
  MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED = -5,
  /** Text that is not valid UTF-8.  Close with 1007. */
  MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR = -6,
  /** A handshake header is missing or not acceptable for an upgrade. */
  MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER = -7
};

/**
 * Close codes (RFC 6455 section 7.4.1) for #MHD_websocket_encode_close().
 * Applications may also use 3000-4999.
 */
enum MHD_WEBSOCKET_CLOSEREASON
{
  /** No code: an empty close frame. */
  MHD_WEBSOCKET_CLOSEREASON_NO_REASON = 0,
  /** Normal closure. */
  MHD_WEBSOCKET_CLOSEREASON_REGULAR = 1000,
  /** The endpoint goes away (server shutdown, page left). */
  MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY = 1001,
  /** The peer broke the protocol. */
  MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR = 1002,
  /** A data type (text or binary) that the endpoint does not accept. */
  MHD_WEBSOCKET_CLOSEREASON_UNSUPPORTED_DATATYPE = 1003,
  /** Text that was not valid UTF-8. */
  MHD_WEBSOCKET_CLOSEREASON_MALFORMED_UTF8 = 1007,
  /** A message that violates the endpoint's policy. */
  MHD_WEBSOCKET_CLOSEREASON_POLICY_VIOLATED = 1008,
  /** A message too big to process. */
  MHD_WEBSOCKET_CLOSEREASON_MAXIMUM_ALLOWED_PAYLOAD_SIZE_EXCEEDED = 1009,
  /** (Client only) the server did not negotiate a required extension. */
  MHD_WEBSOCKET_CLOSEREASON_MISSING_EXTENSION = 1010,
  /** (Server only) an unexpected condition stopped the server. */
  MHD_WEBSOCKET_CLOSEREASON_UNEXPECTED_CONDITION = 1011
};

/**
 * Where an unfinished UTF-8 sequence stands, for text sent in fragments
 * with #MHD_websocket_encode_text().  Pass the same `int` to every
 * fragment of one message; only #MHD_WEBSOCKET_UTF8STEP_NORMAL means the
 * text so far ends on a character boundary.
 */
enum MHD_WEBSOCKET_UTF8STEP
{
  /** At a character boundary. */
  MHD_WEBSOCKET_UTF8STEP_NORMAL = 0,
  /** After a two-byte lead (C2..DF); one tail byte due. */
  MHD_WEBSOCKET_UTF8STEP_UTF2TAIL_1OF1 = 1,
  /** After E0; next byte A0..BF. */
  MHD_WEBSOCKET_UTF8STEP_UTF3TAIL1_1OF2 = 2,
  /** After ED; next byte 80..9F (no surrogates). */
  MHD_WEBSOCKET_UTF8STEP_UTF3TAIL2_1OF2 = 3,
  /** After E1..EC or EE..EF; two tail bytes due. */
  MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_1OF2 = 4,
  /** One tail byte of a three-byte sequence due. */
  MHD_WEBSOCKET_UTF8STEP_UTF3TAIL_2OF2 = 5,
  /** After F0; next byte 90..BF. */
  MHD_WEBSOCKET_UTF8STEP_UTF4TAIL1_1OF3 = 6,
  /** After F4; next byte 80..8F (nothing above U+10FFFF). */
  MHD_WEBSOCKET_UTF8STEP_UTF4TAIL2_1OF3 = 7,
  /** After F1..F3; three tail bytes due. */
  MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_1OF3 = 8,
  /** Two tail bytes of a four-byte sequence due. */
  MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_2OF3 = 9,
  /** One tail byte of a four-byte sequence due. */
  MHD_WEBSOCKET_UTF8STEP_UTF4TAIL_3OF3 = 10
};

/**
 * What #MHD_websocket_stream_is_valid() reports.
 */
enum MHD_WEBSOCKET_VALIDITY
{
  /** Decoding failed or the stream was invalidated: close the connection. */
  MHD_WEBSOCKET_VALIDITY_INVALID = 0,
  /** The stream accepts every frame. */
  MHD_WEBSOCKET_VALIDITY_VALID = 1,
  /** A close frame was received: only ping, pong and close frames decode. */
  MHD_WEBSOCKET_VALIDITY_ONLY_VALID_FOR_CONTROL_FRAMES = 2
};

/** Allocator with the contract of malloc(3). */
typedef void *(*MHD_WebSocketMallocCallback) (size_t buf_len);

/** Allocator with the contract of realloc(3). */
typedef void *(*MHD_WebSocketReallocCallback) (void *buf, size_t new_buf_len);

/** Deallocator with the contract of free(3). */
typedef void (*MHD_WebSocketFreeCallback) (void *buf);

/**
 * Fills @a buf with @a buf_len random bytes and returns how many it wrote.
 * Client streams use it for frame masks, which RFC 6455 wants
 * unpredictable: use a cryptographic source such as OpenSSL's RAND_bytes().
 *
 * @param cls the `cls_rng` given to #MHD_websocket_stream_init2()
 */
typedef size_t (*MHD_WebSocketRandomNumberGenerator) (void *cls, void *buf,
                                                      size_t buf_len);

/** A WebSocket connection's codec state.  Opaque. */
struct MHD_WebSocketStream;


/* ---------------------------------------------------------------------- */
/* Handshake                                                              */
/* ---------------------------------------------------------------------- */

/**
 * Checks the HTTP version of an upgrade request: `HTTP/` followed by
 * `major.minor` in decimal, at least 1.1.
 *
 * @param http_version the version string (as given to the access handler)
 * @return #MHD_WEBSOCKET_STATUS_OK if acceptable,
 *         #MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER otherwise
 *         (also for NULL)
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_check_http_version (const char *http_version);

/**
 * Checks a `Connection` header: a comma-separated token list that must
 * contain `Upgrade` (compared case-insensitively).  The list is read
 * left to right and the answer is OK at the first element equal to
 * `Upgrade`, whatever follows; before that, a character that is neither
 * a token character, space, tab nor comma makes it unacceptable.
 *
 * @param connection_header the header value, or NULL when it is missing
 * @return #MHD_WEBSOCKET_STATUS_OK if acceptable,
 *         #MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER otherwise
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_check_connection_header (const char *connection_header);

/**
 * Checks an `Upgrade` header: a comma-separated protocol list that must
 * contain `websocket` (compared case-insensitively, no version suffix).
 * Read like the `Connection` header, with `/` a token character.
 *
 * @param upgrade_header the header value, or NULL when it is missing
 * @return #MHD_WEBSOCKET_STATUS_OK if acceptable,
 *         #MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER otherwise
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_check_upgrade_header (const char *upgrade_header);

/**
 * Checks a `Sec-WebSocket-Version` header, which must be exactly `13`.
 *
 * @param version_header the header value, or NULL when it is missing
 * @return #MHD_WEBSOCKET_STATUS_OK if acceptable,
 *         #MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER otherwise
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_check_version_header (const char *version_header);

/**
 * Computes the `Sec-WebSocket-Accept` response header from the request's
 * `Sec-WebSocket-Key` (RFC 6455 section 4.2.2).
 *
 * @param sec_websocket_key the request's key: base64 of 16 bytes
 *        (surrounding spaces and tabs are ignored), or NULL when missing
 * @param[out] sec_websocket_accept at least 29 bytes: receives the
 *        28-character value and a terminating NUL; an empty string when
 *        the key is missing or malformed
 * @return #MHD_WEBSOCKET_STATUS_OK on success,
 *         #MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER for a
 *         missing or malformed key,
 *         #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR for a NULL output
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_create_accept_header (const char *sec_websocket_key,
                                    char *sec_websocket_accept);


/* ---------------------------------------------------------------------- */
/* Stream lifecycle                                                       */
/* ---------------------------------------------------------------------- */

/**
 * Creates a stream that allocates with malloc(3), realloc(3) and free(3)
 * and has no random number generator (so it cannot be a client).
 *
 * @param[out] ws receives the new stream, or NULL on failure
 * @param flags #MHD_WEBSOCKET_FLAG values combined with OR
 * @param max_payload_size the largest frame payload or reassembled
 *        message accepted, 0 for no limit
 * @return #MHD_WEBSOCKET_STATUS_OK, #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR
 *         or #MHD_WEBSOCKET_STATUS_MEMORY_ERROR
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_stream_init (struct MHD_WebSocketStream **ws,
                           int flags,
                           size_t max_payload_size);

/**
 * Creates a stream with the caller's allocator and random number
 * generator.
 *
 * @param[out] ws receives the new stream, or NULL on failure
 * @param flags #MHD_WEBSOCKET_FLAG values combined with OR
 * @param max_payload_size the largest frame payload or reassembled
 *        message accepted, 0 for no limit
 * @param callback_malloc allocator for every buffer handed out or held
 *        (not NULL); the stream object itself comes from malloc(3)
 * @param callback_realloc reallocator (not NULL)
 * @param callback_free deallocator (not NULL)
 * @param cls_rng closure for @a callback_rng
 * @param callback_rng random number generator; required for
 *        #MHD_WEBSOCKET_FLAG_CLIENT, unused by servers
 * @return #MHD_WEBSOCKET_STATUS_OK, #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR
 *         or #MHD_WEBSOCKET_STATUS_MEMORY_ERROR
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_stream_init2 (struct MHD_WebSocketStream **ws,
                            int flags,
                            size_t max_payload_size,
                            MHD_WebSocketMallocCallback callback_malloc,
                            MHD_WebSocketReallocCallback callback_realloc,
                            MHD_WebSocketFreeCallback callback_free,
                            void *cls_rng,
                            MHD_WebSocketRandomNumberGenerator callback_rng);

/**
 * Frees a stream and every buffer it still holds.  Buffers already
 * handed to the caller stay valid until freed with #MHD_websocket_free()
 * (call that before this, since it needs the stream).
 *
 * @param ws the stream
 * @return #MHD_WEBSOCKET_STATUS_OK, or
 *         #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR for NULL
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_stream_free (struct MHD_WebSocketStream *ws);

/**
 * Marks a stream invalid, for example when the socket failed: later
 * decodes return #MHD_WEBSOCKET_STATUS_STREAM_BROKEN.  Encoding still
 * works.
 *
 * @param ws the stream
 * @return #MHD_WEBSOCKET_STATUS_OK, or
 *         #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR for NULL
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_stream_invalidate (struct MHD_WebSocketStream *ws);

/**
 * Tells whether a stream still decodes.  It is
 * #MHD_WEBSOCKET_VALIDITY_ONLY_VALID_FOR_CONTROL_FRAMES from the first
 * byte of a received close frame on.
 *
 * @param ws the stream
 * @return the stream's #MHD_WEBSOCKET_VALIDITY;
 *         #MHD_WEBSOCKET_VALIDITY_INVALID for NULL
 */
_MHD_EXTERN enum MHD_WEBSOCKET_VALIDITY
MHD_websocket_stream_is_valid (struct MHD_WebSocketStream *ws);


/* ---------------------------------------------------------------------- */
/* Decoding                                                               */
/* ---------------------------------------------------------------------- */

/**
 * Decodes received bytes.  Bytes may arrive split in any way; the call
 * consumes input until one frame (or, without
 * #MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS, one whole message) is complete and
 * returns it at once.  Call again with the unconsumed rest
 * (`streambuf + *streambuf_read_len`) until it returns
 * #MHD_WEBSOCKET_STATUS_OK, which means all input was consumed.
 *
 * @param ws the stream
 * @param streambuf received bytes (may be NULL when @a streambuf_len is 0)
 * @param streambuf_len how many
 * @param[out] streambuf_read_len how many were consumed.  On an error:
 *        the offset of the header byte that revealed it (not consumed),
 *        the end of the length field for a length error, the end of the
 *        header for a message grown too big, the offending byte for
 *        invalid UTF-8
 * @param[out] payload a fresh buffer with the payload and a NUL after it,
 *        to be freed with #MHD_websocket_free(); NULL for an empty
 *        payload.  On an error with
 *        #MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR, a close
 *        frame to send.
 * @param[out] payload_len the payload's length
 * @return #MHD_WEBSOCKET_STATUS_OK when nothing completed, a frame status
 *         (> 0) when something did, or an error (< 0): any protocol error
 *         invalidates the stream; #MHD_WEBSOCKET_STATUS_MEMORY_ERROR does
 *         not
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_decode (struct MHD_WebSocketStream *ws,
                      const char *streambuf,
                      size_t streambuf_len,
                      size_t *streambuf_read_len,
                      char **payload,
                      size_t *payload_len);

/**
 * Splits a close frame's payload into its code and reason text.
 * Every output pointer may be NULL.
 *
 * @param payload the close frame's payload
 * @param payload_len its length
 * @param[out] reason_code the close code; #MHD_WEBSOCKET_CLOSEREASON_NO_REASON
 *        for an empty payload
 * @param[out] reason_utf8 points into @a payload at the reason text, or
 *        NULL when there is none
 * @param[out] reason_utf8_len the reason text's length
 * @return #MHD_WEBSOCKET_STATUS_OK, #MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR
 *         for a one-byte payload, #MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED
 *         above 125 bytes, #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR for a NULL
 *         payload with a non-zero length
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_split_close_reason (const char *payload,
                                  size_t payload_len,
                                  unsigned short *reason_code,
                                  const char **reason_utf8,
                                  size_t *reason_utf8_len);


/* ---------------------------------------------------------------------- */
/* Encoding                                                               */
/* ---------------------------------------------------------------------- */

/**
 * Encodes a text frame.  The text must be valid UTF-8; sent in fragments,
 * a character may be cut between fragments, and @a utf8_step carries the
 * validator's state from one call to the next.
 *
 * @param ws the stream (only its mode and callbacks are used)
 * @param payload_utf8 the text
 * @param payload_utf8_len its length in bytes
 * @param fragmentation a #MHD_WEBSOCKET_FRAGMENTATION value
 * @param[out] frame a fresh buffer with the frame and a NUL after it, to
 *        be freed with #MHD_websocket_free()
 * @param[out] frame_len the frame's length
 * @param[in,out] utf8_step a #MHD_WEBSOCKET_UTF8STEP: reset for
 *        #MHD_WEBSOCKET_FRAGMENTATION_NONE and
 *        #MHD_WEBSOCKET_FRAGMENTATION_FIRST, continued from for the
 *        others, and left at the state after the payload (a value
 *        outside the enumeration is a broken sequence).  Required for
 *        fragments, optional (may be NULL) otherwise.
 * @return #MHD_WEBSOCKET_STATUS_OK, #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR,
 *         #MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR,
 *         #MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED or
 *         #MHD_WEBSOCKET_STATUS_MEMORY_ERROR
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_encode_text (struct MHD_WebSocketStream *ws,
                           const char *payload_utf8,
                           size_t payload_utf8_len,
                           int fragmentation,
                           char **frame,
                           size_t *frame_len,
                           int *utf8_step);

/**
 * Encodes a binary frame.
 *
 * @param ws the stream (only its mode and callbacks are used)
 * @param payload the data
 * @param payload_len its length
 * @param fragmentation a #MHD_WEBSOCKET_FRAGMENTATION value
 * @param[out] frame a fresh buffer with the frame and a NUL after it, to
 *        be freed with #MHD_websocket_free()
 * @param[out] frame_len the frame's length
 * @return #MHD_WEBSOCKET_STATUS_OK, #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR,
 *         #MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED or
 *         #MHD_WEBSOCKET_STATUS_MEMORY_ERROR
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_encode_binary (struct MHD_WebSocketStream *ws,
                             const char *payload,
                             size_t payload_len,
                             int fragmentation,
                             char **frame,
                             size_t *frame_len);

/**
 * Encodes a ping frame (at most 125 bytes of payload).
 *
 * @param ws the stream (only its mode and callbacks are used)
 * @param payload the ping's payload (may be NULL when @a payload_len is 0)
 * @param payload_len its length
 * @param[out] frame a fresh buffer with the frame and a NUL after it
 * @param[out] frame_len the frame's length
 * @return #MHD_WEBSOCKET_STATUS_OK, #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR,
 *         #MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED or
 *         #MHD_WEBSOCKET_STATUS_MEMORY_ERROR
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_encode_ping (struct MHD_WebSocketStream *ws,
                           const char *payload,
                           size_t payload_len,
                           char **frame,
                           size_t *frame_len);

/**
 * Encodes a pong frame (at most 125 bytes of payload).  A pong answering
 * a ping carries the ping's payload.
 *
 * @param ws the stream (only its mode and callbacks are used)
 * @param payload the pong's payload (may be NULL when @a payload_len is 0)
 * @param payload_len its length
 * @param[out] frame a fresh buffer with the frame and a NUL after it
 * @param[out] frame_len the frame's length
 * @return #MHD_WEBSOCKET_STATUS_OK, #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR,
 *         #MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED or
 *         #MHD_WEBSOCKET_STATUS_MEMORY_ERROR
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_encode_pong (struct MHD_WebSocketStream *ws,
                           const char *payload,
                           size_t payload_len,
                           char **frame,
                           size_t *frame_len);

/**
 * Encodes a close frame.
 *
 * @param ws the stream (only its mode and callbacks are used)
 * @param reason_code #MHD_WEBSOCKET_CLOSEREASON_NO_REASON for an empty
 *        close frame, otherwise a code of 1000 or above
 * @param reason_utf8 reason text (UTF-8, at most 123 bytes); must be empty
 *        with #MHD_WEBSOCKET_CLOSEREASON_NO_REASON
 * @param reason_utf8_len its length
 * @param[out] frame a fresh buffer with the frame and a NUL after it
 * @param[out] frame_len the frame's length
 * @return #MHD_WEBSOCKET_STATUS_OK, #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR,
 *         #MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED,
 *         #MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR or
 *         #MHD_WEBSOCKET_STATUS_MEMORY_ERROR
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_encode_close (struct MHD_WebSocketStream *ws,
                            unsigned short reason_code,
                            const char *reason_utf8,
                            size_t reason_utf8_len,
                            char **frame,
                            size_t *frame_len);


/* ---------------------------------------------------------------------- */
/* Memory                                                                 */
/* ---------------------------------------------------------------------- */

/**
 * Allocates through the stream's malloc callback.
 *
 * @return the buffer, or NULL (also for a NULL stream)
 */
_MHD_EXTERN void *
MHD_websocket_malloc (struct MHD_WebSocketStream *ws,
                      size_t buf_len);

/**
 * Reallocates through the stream's realloc callback.
 *
 * @return the buffer, or NULL (also for a NULL stream)
 */
_MHD_EXTERN void *
MHD_websocket_realloc (struct MHD_WebSocketStream *ws,
                       void *buf,
                       size_t new_buf_len);

/**
 * Frees, through the stream's free callback, a buffer returned by the
 * library (a decoded payload, an encoded frame).
 *
 * @return #MHD_WEBSOCKET_STATUS_OK, or
 *         #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR for a NULL stream
 */
_MHD_EXTERN int
MHD_websocket_free (struct MHD_WebSocketStream *ws,
                    void *buf);


/* ---------------------------------------------------------------------- */
/* Compression: permessage-deflate (RFC 7692)                             */
/* ---------------------------------------------------------------------- */
/*
 * Not part of the original library; a program that never calls these
 * functions sees no difference.  The server negotiates with
 * #MHD_websocket_deflate_negotiate() in the access handler and sends its
 * answer as `Sec-WebSocket-Extensions`; a client builds its offer with
 * #MHD_websocket_deflate_offer() and checks the server's answer with
 * #MHD_websocket_deflate_check_answer().  Both then pass the agreed value
 * (the answer) to #MHD_websocket_stream_enable_deflate() right after
 * creating the stream.
 */

/**
 * Flags of #MHD_websocket_deflate_negotiate() and
 * #MHD_websocket_deflate_offer(), combined with bitwise OR.
 */
enum MHD_WEBSOCKET_DEFLATE_FLAG
{
  /** Both sides keep their compression context between messages. */
  MHD_WEBSOCKET_DEFLATE_FLAG_NONE = 0,
  /**
   * The server starts every message with an empty compression context
   * (`server_no_context_takeover`): the client's decompressor holds no
   * state between messages.
   */
  MHD_WEBSOCKET_DEFLATE_FLAG_SERVER_NO_CONTEXT_TAKEOVER = 1,
  /**
   * The client starts every message with an empty compression context
   * (`client_no_context_takeover`): the server's decompressor holds no
   * state between messages.
   */
  MHD_WEBSOCKET_DEFLATE_FLAG_CLIENT_NO_CONTEXT_TAKEOVER = 2
};

/**
 * A buffer of this many bytes holds any `Sec-WebSocket-Extensions` value
 * that #MHD_websocket_deflate_negotiate() or #MHD_websocket_deflate_offer()
 * writes, with its NUL.
 */
#define MHD_WEBSOCKET_DEFLATE_HEADER_SIZE 160

/**
 * Server side: chooses among the client's permessage-deflate offers.
 * The offers are read in the client's order of preference; unknown
 * extensions are skipped, and an offer with an unknown, invalid or
 * repeated parameter is declined.  The first offer that the settings
 * allow is accepted and its answer written to @a answer.
 *
 * @param offer_header the client's `Sec-WebSocket-Extensions` value, or
 *        NULL when it sent none (several header lines joined with ", ")
 * @param flags #MHD_WEBSOCKET_DEFLATE_FLAG values the server wants
 * @param server_max_window_bits the largest window (8-15) the server's
 *        compressor may be asked to use, also the value answered when the
 *        client asks for a limit; 0 for 15
 * @param client_max_window_bits the largest window (8-15) the client
 *        may compress with, which is the memory of the server's
 *        decompressor; 0 for 15.  Below 15, offers that do not let the
 *        server limit the client's window are declined.
 * @param[out] answer the response header value, NUL-terminated; an empty
 *        string when every offer was declined (send no header then)
 * @param answer_size the size of @a answer; #MHD_WEBSOCKET_DEFLATE_HEADER_SIZE
 *        is always enough
 * @return #MHD_WEBSOCKET_STATUS_OK when an offer was accepted,
 *         #MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER when there
 *         was none to accept (no compression; the upgrade may go on),
 *         #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR for a NULL @a answer, a
 *         buffer too small, unknown flags or window bits out of range
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_deflate_negotiate (const char *offer_header,
                                 int flags,
                                 int server_max_window_bits,
                                 int client_max_window_bits,
                                 char *answer,
                                 size_t answer_size);

/**
 * Client side: writes a permessage-deflate offer for the
 * `Sec-WebSocket-Extensions` request header.
 *
 * @param flags #MHD_WEBSOCKET_DEFLATE_FLAG values to ask for
 * @param server_max_window_bits 8-15 to ask the server for at most that
 *        window (the memory of the client's decompressor), 0 not to ask
 * @param client_max_window_bits 8-15 to promise at most that window;
 *        0 to offer the parameter without a value (the server may then
 *        choose), as browsers do
 * @param[out] offer the header value, NUL-terminated
 * @param offer_size the size of @a offer;
 *        #MHD_WEBSOCKET_DEFLATE_HEADER_SIZE is always enough
 * @return #MHD_WEBSOCKET_STATUS_OK, or
 *         #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR for a NULL @a offer, a
 *         buffer too small, unknown flags or window bits out of range
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_deflate_offer (int flags,
                             int server_max_window_bits,
                             int client_max_window_bits,
                             char *offer,
                             size_t offer_size);

/**
 * Client side: checks the server's `Sec-WebSocket-Extensions` answer
 * against the offer that was sent.  The answer must name one extension,
 * permessage-deflate, with parameters the offer allows (RFC 7692 section
 * 7): an extension or parameter that was not offered, a repeated or
 * invalid parameter, or a window larger than offered fails the
 * handshake.
 *
 * @param offer the offer sent (from #MHD_websocket_deflate_offer())
 * @param answer the server's header value, or NULL when it sent none
 * @return #MHD_WEBSOCKET_STATUS_OK when compression was agreed (pass
 *         @a answer to #MHD_websocket_stream_enable_deflate()),
 *         #MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER when the
 *         server sent no answer (no compression) or an empty one,
 *         #MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR when the answer fails the
 *         handshake, #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR for a NULL or
 *         invalid @a offer
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_deflate_check_answer (const char *offer,
                                    const char *answer);

/**
 * Enables permessage-deflate on a fresh stream with the agreed
 * parameters.  From then on, text and binary messages that arrive with
 * the RSV1 bit are decompressed (the size limit of the stream bounds the
 * decompressed size, text is validated after decompression), and the
 * text and binary encoders compress.  Control frames are never
 * compressed.  zlib allocates through the stream's callbacks.
 *
 * Encoding now changes the stream (the compression context): one thread
 * may still decode while another encodes, but two threads must not
 * encode on one stream at once.  The fragments of a fragmented message
 * form one compressed message: encode them in order, without other data
 * messages between them.
 *
 * @param ws a stream that has not decoded or encoded anything yet
 * @param extension_header the agreed `Sec-WebSocket-Extensions` value:
 *        the server's answer (from #MHD_websocket_deflate_negotiate()),
 *        for a server stream and a client stream alike
 * @param level zlib's compression level, 0-9 (0 sends every message
 *        uncompressed), or -1 for the library's default: 9 for messages
 *        up to 1 KiB, 6 (zlib's default) for longer ones
 * @param max_window_bits a cap (8-15) on the window this side compresses
 *        with, below what was agreed; 0 for no cap.  Between messages a
 *        stream holds no zlib state, only, with context takeover, the
 *        bytes each window reaches: up to 32 KiB each way at 15 bits,
 *        under 64 KiB a connection in all.  While a message is being
 *        compressed, zlib needs about 140 KiB more (260 KiB for messages
 *        over 64 KiB), and 40 KiB to decompress one
 * @param min_size unfragmented messages shorter than this are sent
 *        uncompressed (0: compress every message)
 * @return #MHD_WEBSOCKET_STATUS_OK,
 *         #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR for a NULL stream, a
 *         stream already used or enabled, a value that is not a valid
 *         answer, or arguments out of range,
 *         #MHD_WEBSOCKET_STATUS_MEMORY_ERROR when memory ran out (the
 *         stream stays usable, uncompressed)
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_stream_enable_deflate (struct MHD_WebSocketStream *ws,
                                     const char *extension_header,
                                     int level,
                                     int max_window_bits,
                                     size_t min_size);

/* ********************************************************************** */
/* Serving: a sans-I/O session, and a loop that runs many of them         */
/* ********************************************************************** */

/**
 * @defgroup session The session layer
 *
 * A session is one WebSocket connection's protocol state above the codec,
 * without I/O and without threads: bytes read from the peer go in with
 * #MHD_websocket_session_receive(), whole messages come out through the
 * event callback, and the bytes to write are peeked with
 * #MHD_websocket_session_pending() and retired with
 * #MHD_websocket_session_sent() after the caller wrote them with its own
 * `writev()`, `SSL_write()` or `uv_write()`.  Pings are answered, a
 * received close is answered, the closing handshake and its timeout are
 * tracked, and a protocol, UTF-8 or size error sends the close frame the
 * decoder generated.  Time is an input: the caller passes its clock in
 * milliseconds and calls #MHD_websocket_session_tick() at
 * #MHD_websocket_session_next_deadline().
 *
 * Output is two queues of reference-counted frames: pings and pongs go
 * ahead of queued data, but never into a frame already handed out by
 * #MHD_websocket_session_pending().  The close frame is the last frame:
 * queued messages go out before it (also the answers to a peer's valid
 * messages before its protocol error), except when they cannot (a send
 * refused at the hard bound, a failed allocation): then the messages
 * not yet handed out are dropped.  Queued data is bounded: above the soft
 * bound #MHD_websocket_session_want_read() is 0 and sends report
 * #MHD_WEBSOCKET_SEND_BACKPRESSURE; a send that would take the queue past
 * the hard bound is refused whole, so the queue never passes it.
 *
 * Every allocation goes through the allocator of the stream the session
 * wraps; a failed one is a status, never a crash or a leak.
 * @{
 */

/** One connection's session (opaque). */
struct MHD_WebSocketSession;

/** Settings shared by any number of sessions (opaque). */
struct MHD_WebSocketSessionConfig;

/**
 * A message encoded once for many sessions (opaque): the plain frame, and
 * the compressed frame that every session which agreed
 * `server_no_context_takeover` can take.  Reference-counted; safe to share
 * across threads.
 */
struct MHD_WebSocketBroadcast;

/**
 * A piece of a session's pending output, as
 * #MHD_websocket_session_pending() hands it out; the same two fields as
 * POSIX `struct iovec`, in the same order.
 */
struct MHD_WebSocketChunk
{
  /** First byte; owned by the session until retired. */
  const char *data;
  /** Number of bytes. */
  size_t len;
};

/** Settings of #MHD_websocket_session_config_set(). */
enum MHD_WEBSOCKET_SESSION_OPTION
{
  /** Queued data bytes above which reading stops and sends report
      #MHD_WEBSOCKET_SEND_BACKPRESSURE; reading resumes at half of it.
      Default 1 MiB. */
  MHD_WEBSOCKET_SESSION_OPTION_SOFT_BOUND = 1,
  /** Queued data bytes a send may never take the queue past.  Default
      16 MiB; never below the soft bound. */
  MHD_WEBSOCKET_SESSION_OPTION_HARD_BOUND = 2,
  /** 1 (default): a refused send closes the session with 1008; 0: the
      send is only refused. */
  MHD_WEBSOCKET_SESSION_OPTION_CLOSE_ON_HARD_BOUND = 3,
  /** Milliseconds of silence from the peer before a 1001 close; 0 for
      none (default). */
  MHD_WEBSOCKET_SESSION_OPTION_IDLE_TIMEOUT_MS = 4,
  /** Milliseconds of silence from the peer before a ping; 0 for none
      (default). */
  MHD_WEBSOCKET_SESSION_OPTION_PING_INTERVAL_MS = 5,
  /** Milliseconds the peer has to answer our close before the session
      ends anyway.  Default 2000. */
  MHD_WEBSOCKET_SESSION_OPTION_CLOSE_TIMEOUT_MS = 6,
  /** Pongs that may wait unsent before further pings are not answered
      (a peer that floods pings).  Default 8. */
  MHD_WEBSOCKET_SESSION_OPTION_MAX_PONGS_QUEUED = 7,
  /** The code answering a close frame without a code: 0 (default) for
      an empty close frame, or e.g. 1000. */
  MHD_WEBSOCKET_SESSION_OPTION_EMPTY_CLOSE_CODE = 8,
  /** 1: a received close's reason text is sent back with its code;
      0 (default): the code alone. */
  MHD_WEBSOCKET_SESSION_OPTION_ECHO_CLOSE_REASON = 9
};

/** What a send did (#MHD_websocket_session_send_text() and others). */
enum MHD_WEBSOCKET_SEND_RESULT
{
  /** Queued. */
  MHD_WEBSOCKET_SEND_OK = 0,
  /** Queued; the data queue is now above the soft bound. */
  MHD_WEBSOCKET_SEND_BACKPRESSURE = 1,
  /** Not queued: it would have passed the hard bound. */
  MHD_WEBSOCKET_SEND_REFUSED = 2,
  /** Not queued: the session is closing or has ended. */
  MHD_WEBSOCKET_SEND_CLOSED = 3,
  /** Not queued: an allocation failed. */
  MHD_WEBSOCKET_SEND_MEMORY_ERROR = 4,
  /** Not queued: a bad argument (invalid UTF-8 text, a ping payload over
      125 bytes, a close code that may not be sent). */
  MHD_WEBSOCKET_SEND_INVALID = 5,
  /** Not queued: no such connection (it ended; loop layer only). */
  MHD_WEBSOCKET_SEND_NO_CONNECTION = 6
};

/** Why a session ended, given to the end event. */
enum MHD_WEBSOCKET_END_REASON
{
  /** The peer closed: its close frame, or the end of its byte stream. */
  MHD_WEBSOCKET_END_PEER = 0,
  /** A protocol, UTF-8 or size error of the peer (1002, 1007, 1009). */
  MHD_WEBSOCKET_END_PROTOCOL = 1,
  /** The peer was silent for the idle timeout (1001). */
  MHD_WEBSOCKET_END_IDLE = 2,
  /** A send was refused at the hard bound (1008). */
  MHD_WEBSOCKET_END_STALLED = 3,
  /** The application closed it. */
  MHD_WEBSOCKET_END_APP = 4,
  /** The server is stopping (1001). */
  MHD_WEBSOCKET_END_SHUTDOWN = 5,
  /** An I/O error, or a failed allocation. */
  MHD_WEBSOCKET_END_ERROR = 6,
  /** The peer did not answer our close within the close timeout. */
  MHD_WEBSOCKET_END_CLOSE_TIMEOUT = 7
};

/**
 * Receives what the peer sent, in the thread that called
 * #MHD_websocket_session_receive(), #MHD_websocket_session_tick() or
 * #MHD_websocket_session_eof().
 *
 * @param cls the session's closure (#MHD_websocket_session_create())
 * @param session the session; sends on it are allowed here
 * @param type what arrived, as #MHD_websocket_decode() reports it:
 *        #MHD_WEBSOCKET_STATUS_TEXT_FRAME or
 *        #MHD_WEBSOCKET_STATUS_BINARY_FRAME (a whole message), the
 *        `*_FRAGMENT` values when the stream was made with
 *        #MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS, and, for information only
 *        (the session already answered), #MHD_WEBSOCKET_STATUS_PING_FRAME,
 *        #MHD_WEBSOCKET_STATUS_PONG_FRAME and
 *        #MHD_WEBSOCKET_STATUS_CLOSE_FRAME
 * @param data the payload (NUL-terminated for text), valid during the call
 * @param len its length in bytes
 */
typedef void
(*MHD_WebSocketMessageCallback) (void *cls,
                                 struct MHD_WebSocketSession *session,
                                 enum MHD_WEBSOCKET_STATUS type,
                                 const char *data,
                                 size_t len);

/**
 * The session has ended, once per session: called when both
 * #MHD_websocket_session_want_read() and
 * #MHD_websocket_session_want_write() have become 0 (the caller then
 * closes the connection), or from #MHD_websocket_session_free() if it had
 * not ended before.  The loop layer also calls it, with @a session NULL
 * and #MHD_WEBSOCKET_END_ERROR or #MHD_WEBSOCKET_END_SHUTDOWN, for a
 * closure whose connection never got a session (a failed upgrade, or a
 * server that stopped first): each closure given to the loop layer comes
 * back exactly once.
 *
 * @param cls the session's closure
 * @param session the session (only queries are allowed on it), or NULL
 * @param reason why it ended
 * @param code the close code sent or received, 0 for none
 */
typedef void
(*MHD_WebSocketEndCallback) (void *cls,
                             struct MHD_WebSocketSession *session,
                             enum MHD_WEBSOCKET_END_REASON reason,
                             unsigned short code);

/**
 * Creates a session configuration with the defaults listed at
 * #MHD_WEBSOCKET_SESSION_OPTION.
 *
 * @return the configuration, or NULL without memory
 */
_MHD_EXTERN struct MHD_WebSocketSessionConfig *
MHD_websocket_session_config_create (void);

/**
 * Sets one option of @a config.
 *
 * @return #MHD_WEBSOCKET_STATUS_OK, or
 *         #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR for an unknown option or a
 *         value out of range (nothing changed)
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_session_config_set (struct MHD_WebSocketSessionConfig *config,
                                  enum MHD_WEBSOCKET_SESSION_OPTION option,
                                  unsigned long long value);

/**
 * Sets the callbacks of every session made with @a config (either may be
 * NULL).
 */
_MHD_EXTERN void
MHD_websocket_session_config_set_callbacks (
  struct MHD_WebSocketSessionConfig *config,
  MHD_WebSocketMessageCallback message_cb,
  MHD_WebSocketEndCallback end_cb);

/**
 * Frees @a config.  Sessions made with it keep their own copy.
 */
_MHD_EXTERN void
MHD_websocket_session_config_free (struct MHD_WebSocketSessionConfig *config);

/**
 * Creates a session over @a ws, which it takes over (freed with the
 * session, also on failure).  @a ws is fresh: made with
 * #MHD_websocket_stream_init() or #MHD_websocket_stream_init2() and, when
 * compression was agreed, #MHD_websocket_stream_enable_deflate().
 *
 * @param session receives the session
 * @param ws the stream (server or client side)
 * @param config the settings (copied)
 * @param cls closure of the callbacks
 * @param now_ms the caller's clock, in milliseconds
 * @return #MHD_WEBSOCKET_STATUS_OK, #MHD_WEBSOCKET_STATUS_MEMORY_ERROR or
 *         #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_session_create (struct MHD_WebSocketSession **session,
                              struct MHD_WebSocketStream *ws,
                              const struct MHD_WebSocketSessionConfig *config,
                              void *cls,
                              unsigned long long now_ms);

/**
 * Frees @a session, its stream and its queues (the end event is called
 * first if the session had not ended).
 */
_MHD_EXTERN void
MHD_websocket_session_free (struct MHD_WebSocketSession *session);

/** The stream the session wraps, e.g. to encode with it. */
_MHD_EXTERN struct MHD_WebSocketStream *
MHD_websocket_session_stream (struct MHD_WebSocketSession *session);

/** The closure of the callbacks. */
_MHD_EXTERN void *
MHD_websocket_session_get_cls (struct MHD_WebSocketSession *session);

/** Replaces the closure of the callbacks. */
_MHD_EXTERN void
MHD_websocket_session_set_cls (struct MHD_WebSocketSession *session,
                               void *cls);

/**
 * Feeds bytes read from the peer; the message callback runs for what they
 * complete.  All bytes are consumed (bytes after the peer's close frame
 * are dropped).
 *
 * @return #MHD_WEBSOCKET_STATUS_OK, or #MHD_WEBSOCKET_STATUS_MEMORY_ERROR
 *         (the session has then ended with #MHD_WEBSOCKET_END_ERROR)
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_session_receive (struct MHD_WebSocketSession *session,
                               const char *data,
                               size_t len,
                               unsigned long long now_ms);

/**
 * The peer's byte stream ended (`read()` returned 0) or failed
 * (@a error nonzero); the session ends unless it already has.
 */
_MHD_EXTERN void
MHD_websocket_session_eof (struct MHD_WebSocketSession *session,
                           int error,
                           unsigned long long now_ms);

/**
 * Fills @a chunks with the bytes waiting to be written, in order.
 *
 * @return the number of chunks filled (at most @a max), 0 when nothing
 *         waits (then #MHD_websocket_session_want_write() is 0)
 */
_MHD_EXTERN unsigned int
MHD_websocket_session_pending (struct MHD_WebSocketSession *session,
                               struct MHD_WebSocketChunk *chunks,
                               unsigned int max);

/**
 * Retires @a len bytes of the pending output: that many went out.
 * A partial write is fine; the next #MHD_websocket_session_pending()
 * starts after them.
 */
_MHD_EXTERN void
MHD_websocket_session_sent (struct MHD_WebSocketSession *session,
                            size_t len,
                            unsigned long long now_ms);

/** 1 when the caller should read from the peer, 0 while the data queue
    is above the soft bound, after the peer's close, or once ended. */
_MHD_EXTERN int
MHD_websocket_session_want_read (const struct MHD_WebSocketSession *session);

/** 1 exactly when #MHD_websocket_session_pending() has bytes. */
_MHD_EXTERN int
MHD_websocket_session_want_write (const struct MHD_WebSocketSession *session);

/**
 * 1 once our close frame has gone out whole: nothing more will be
 * written, and the caller should end its sending side (`shutdown
 * (SHUT_WR)`, or the TLS close) while the peer finishes.
 */
_MHD_EXTERN int
MHD_websocket_session_write_done (const struct MHD_WebSocketSession *session);

/** 1 once the session has ended (the end event has been called). */
_MHD_EXTERN int
MHD_websocket_session_ended (const struct MHD_WebSocketSession *session);

/** Data bytes queued and not yet retired. */
_MHD_EXTERN size_t
MHD_websocket_session_queued (const struct MHD_WebSocketSession *session);

/**
 * The next time, on the caller's clock, at which
 * #MHD_websocket_session_tick() has work (a ping, the idle or the close
 * timeout); `(unsigned long long) -1` for none.
 */
_MHD_EXTERN unsigned long long
MHD_websocket_session_next_deadline (
  const struct MHD_WebSocketSession *session);

/** Acts on every deadline at or before @a now_ms. */
_MHD_EXTERN void
MHD_websocket_session_tick (struct MHD_WebSocketSession *session,
                            unsigned long long now_ms);

/** Encodes and queues a text message (valid UTF-8). */
_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_session_send_text (struct MHD_WebSocketSession *session,
                                 const char *text,
                                 size_t len);

/** Encodes and queues a binary message. */
_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_session_send_binary (struct MHD_WebSocketSession *session,
                                   const char *data,
                                   size_t len);

/** Queues a ping (at most 125 bytes), ahead of queued data. */
_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_session_send_ping (struct MHD_WebSocketSession *session,
                                 const char *data,
                                 size_t len);

/**
 * Starts the closing handshake: queues a close frame with @a code (0 for
 * none) and @a reason (may be NULL) behind the messages already queued,
 * which still go out (a "goodbye" sent just before stays), stops taking
 * messages, and arms the close timeout.  The one path to closing,
 * whoever starts it; a second call does nothing and reports
 * #MHD_WEBSOCKET_SEND_CLOSED.
 */
_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_session_close (struct MHD_WebSocketSession *session,
                             unsigned short code,
                             const char *reason);

/**
 * Encodes a message once for many sessions.  The plain frame is made now;
 * the compressed one when a session that can take it first asks for it.
 *
 * @param broadcast receives it, holding one reference
 * @param binary 0 for text (valid UTF-8), 1 for binary
 * @param data,len the message
 * @param callback_malloc,callback_free its allocator (NULL for malloc()
 *        and free())
 * @return #MHD_WEBSOCKET_STATUS_OK,
 *         #MHD_WEBSOCKET_STATUS_MEMORY_ERROR or
 *         #MHD_WEBSOCKET_STATUS_PARAMETER_ERROR
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_broadcast_create (struct MHD_WebSocketBroadcast **broadcast,
                                int binary,
                                const char *data,
                                size_t len,
                                MHD_WebSocketMallocCallback callback_malloc,
                                MHD_WebSocketFreeCallback callback_free);

/** Drops one reference; the last one frees it (any thread). */
_MHD_EXTERN void
MHD_websocket_broadcast_release (struct MHD_WebSocketBroadcast *broadcast);

/**
 * Queues @a broadcast without copying it: the compressed frame when the
 * session agreed `server_no_context_takeover` with a window that can
 * inflate it, the plain one otherwise.  The session takes a reference of
 * its own.
 */
_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_session_send_broadcast (struct MHD_WebSocketSession *session,
                                      struct MHD_WebSocketBroadcast *broadcast);

/** @} */

/**
 * @defgroup loop The loop layer
 *
 * Loop threads (one per core by default) that serve upgraded
 * libmicrohttpd connections with sessions: epoll on Linux, `poll(2)`
 * elsewhere on POSIX.  The session callbacks of the configuration run in
 * the loop thread that owns the connection.  In a loop thread, sends on
 * any session of that loop are allowed, and the loop writes what they
 * queue.  For the other loops' connections, and from other threads, use
 * the functions marked thread-safe: they address connections by id, and
 * ids stay safe to use after the connection ended.
 * @{
 */

/** A set of loop threads (opaque). */
struct MHD_WebSocketServer;

/** One loop thread (opaque). */
struct MHD_WebSocketLoop;

/** Another file descriptor watched by a loop (opaque). */
struct MHD_WebSocketWatch;

/** A one-shot timer of a loop (opaque). */
struct MHD_WebSocketTimer;

/* libmicrohttpd's types, declared for a header that stands alone. */
struct MHD_Connection;
struct MHD_UpgradeResponseHandle;

/** Interest flags of #MHD_websocket_watch_set(). */
#define MHD_WEBSOCKET_WATCH_READ 1
#define MHD_WEBSOCKET_WATCH_WRITE 2

/** #MHD_websocket_server_broadcast() to every group. */
#define MHD_WEBSOCKET_ALL_GROUPS 0xffffffffu

/** Settings of #MHD_websocket_server_set(). */
enum MHD_WEBSOCKET_SERVER_OPTION
{
  /** Loop threads; 0 (default) for one per online CPU. */
  MHD_WEBSOCKET_SERVER_OPTION_THREADS = 1,
  /** Largest message accepted, for streams made by
      #MHD_websocket_server_upgrade(); 0 (default) for no limit. */
  MHD_WEBSOCKET_SERVER_OPTION_MAX_PAYLOAD = 2,
  /** 1 (default): accept permessage-deflate when a client offers it. */
  MHD_WEBSOCKET_SERVER_OPTION_DEFLATE = 3,
  /** #MHD_WEBSOCKET_DEFLATE_FLAG values asked of every client that
      compresses.  Default 0. */
  MHD_WEBSOCKET_SERVER_OPTION_DEFLATE_FLAGS = 4,
  /** 1: force the poll(2) backend where epoll exists (tests). */
  MHD_WEBSOCKET_SERVER_OPTION_USE_POLL = 5
};

/**
 * Creates a server (no thread runs yet).
 *
 * @param server receives it
 * @param config the sessions' settings and callbacks (copied)
 * @return #MHD_WEBSOCKET_STATUS_OK or #MHD_WEBSOCKET_STATUS_MEMORY_ERROR
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_server_create (struct MHD_WebSocketServer **server,
                             const struct MHD_WebSocketSessionConfig *config);

/** Sets one option, before #MHD_websocket_server_start(). */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_server_set (struct MHD_WebSocketServer *server,
                          enum MHD_WEBSOCKET_SERVER_OPTION option,
                          unsigned long long value);

/**
 * Called in each loop thread as it starts, before any connection
 * (@a start 1), and when the server begins to stop, before its
 * connections are closed (@a start 0): the place for per-loop state such
 * as watches and timers.
 */
typedef void
(*MHD_WebSocketLoopCallback) (void *cls,
                              struct MHD_WebSocketLoop *loop,
                              int start);

/** Sets the loop callback, before #MHD_websocket_server_start(). */
_MHD_EXTERN void
MHD_websocket_server_set_loop_callback (struct MHD_WebSocketServer *server,
                                        MHD_WebSocketLoopCallback cb,
                                        void *cls);

/**
 * Called in the loop thread when a connection has been adopted and its
 * session is ready, before any of its messages: the place to send a
 * greeting or to list the connection.  @a cls is the closure given to
 * #MHD_websocket_server_upgrade() or #MHD_websocket_server_adopt().
 */
typedef void
(*MHD_WebSocketOpenCallback) (void *cls,
                              struct MHD_WebSocketSession *session);

/** Sets the open callback, before #MHD_websocket_server_start(). */
_MHD_EXTERN void
MHD_websocket_server_set_open_callback (struct MHD_WebSocketServer *server,
                                        MHD_WebSocketOpenCallback cb);

/** Starts the loop threads. */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_server_start (struct MHD_WebSocketServer *server);

/**
 * Graceful shutdown: every connection gets a 1001 with @a reason, the
 * peers have up to @a wait_ms to finish, the rest are cut off, and the
 * loop threads are joined.  Every upgrade handle has been closed on
 * return, so `MHD_stop_daemon()` may follow.
 */
_MHD_EXTERN void
MHD_websocket_server_stop (struct MHD_WebSocketServer *server,
                           const char *reason,
                           unsigned int wait_ms);

/** Frees a stopped (or never started) server. */
_MHD_EXTERN void
MHD_websocket_server_free (struct MHD_WebSocketServer *server);

/**
 * For the access handler: answers a WebSocket opening handshake with 101
 * (negotiating permessage-deflate as the server's options say) and hands
 * the connection to a loop once upgraded, or answers 400 or 426 with the
 * reason.  @a user becomes the session's closure.
 *
 * @return `MHD_YES` or `MHD_NO`, as the access handler returns
 */
_MHD_EXTERN int
MHD_websocket_server_upgrade (struct MHD_WebSocketServer *server,
                              struct MHD_Connection *connection,
                              const char *method,
                              const char *version,
                              void *user);

/**
 * For an upgrade handler of the caller's own: takes over an upgraded
 * connection.  The loop calls `MHD_upgrade_action (urh,
 * MHD_UPGRADE_ACTION_CLOSE)` exactly once for it, also when this fails.
 *
 * @param sock the upgraded socket (may be non-blocking)
 * @param urh its handle
 * @param extra_in,extra_in_size bytes libmicrohttpd already read
 * @param ws a fresh stream, deflate enabled when agreed (taken over)
 * @param user the session's closure
 * @param id receives the connection id (may be NULL)
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_server_adopt (struct MHD_WebSocketServer *server,
                            int sock,
                            struct MHD_UpgradeResponseHandle *urh,
                            const char *extra_in,
                            size_t extra_in_size,
                            struct MHD_WebSocketStream *ws,
                            void *user,
                            unsigned long long *id);

/** The connection id of a session the loop runs (in its loop thread). */
_MHD_EXTERN unsigned long long
MHD_websocket_server_connection_id (const struct MHD_WebSocketSession *s);

/** Puts a session's connection into group @a group (0 by default). */
_MHD_EXTERN void
MHD_websocket_server_set_group (struct MHD_WebSocketSession *s,
                                unsigned int group);

/** Thread-safe: copies and queues a text or binary message. */
_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_server_send (struct MHD_WebSocketServer *server,
                           unsigned long long id,
                           int binary,
                           const char *data,
                           size_t len);

/** Thread-safe: starts closing a connection. */
_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_server_close (struct MHD_WebSocketServer *server,
                            unsigned long long id,
                            unsigned short code,
                            const char *reason);

/**
 * Thread-safe: queues @a broadcast to every connection of @a group
 * (#MHD_WEBSOCKET_ALL_GROUPS for all), on every loop.
 *
 * @return #MHD_WEBSOCKET_STATUS_OK or #MHD_WEBSOCKET_STATUS_MEMORY_ERROR
 */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_server_broadcast (struct MHD_WebSocketServer *server,
                                unsigned int group,
                                struct MHD_WebSocketBroadcast *broadcast);

/** Thread-safe: runs fn(loop, arg) in @a loop's thread, soon. */
_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_loop_post (struct MHD_WebSocketLoop *loop,
                         void (*fn) (struct MHD_WebSocketLoop *loop,
                                     void *arg),
                         void *arg);

/** The number of loops, and one of them. */
_MHD_EXTERN unsigned int
MHD_websocket_server_loop_count (const struct MHD_WebSocketServer *server);

_MHD_EXTERN struct MHD_WebSocketLoop *
MHD_websocket_server_loop (struct MHD_WebSocketServer *server,
                           unsigned int index);

/** The loop of the calling thread, NULL outside loop threads. */
_MHD_EXTERN struct MHD_WebSocketLoop *
MHD_websocket_loop_current (void);

/**
 * Watches @a fd in @a loop (from its thread): cb runs in the loop thread
 * when it is ready for an interest set with #MHD_websocket_watch_set().
 */
_MHD_EXTERN struct MHD_WebSocketWatch *
MHD_websocket_watch_create (struct MHD_WebSocketLoop *loop,
                            int fd,
                            void (*cb) (struct MHD_WebSocketWatch *w,
                                        int events,
                                        void *arg),
                            void *arg);

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_watch_set (struct MHD_WebSocketWatch *w,
                         int events);

_MHD_EXTERN int
MHD_websocket_watch_events (const struct MHD_WebSocketWatch *w);

/** Stops watching (the fd stays open) and frees @a w. */
_MHD_EXTERN void
MHD_websocket_watch_free (struct MHD_WebSocketWatch *w);

/** A disarmed one-shot timer of @a loop (from its thread). */
_MHD_EXTERN struct MHD_WebSocketTimer *
MHD_websocket_timer_create (struct MHD_WebSocketLoop *loop,
                            void (*cb) (struct MHD_WebSocketTimer *t,
                                        void *arg),
                            void *arg);

/** (Re)arms @a t to fire once, @a ms milliseconds from now. */
_MHD_EXTERN void
MHD_websocket_timer_arm (struct MHD_WebSocketTimer *t,
                         unsigned long ms);

_MHD_EXTERN void
MHD_websocket_timer_disarm (struct MHD_WebSocketTimer *t);

_MHD_EXTERN void
MHD_websocket_timer_free (struct MHD_WebSocketTimer *t);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* MHD_WEBSOCKET_H */
/* clang-format on */
