/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file decode.c
 * @brief The incremental frame decoder.
 *
 * The decoder has two states: reading a header and reading a payload.
 * A header is parsed straight from the caller's buffer when it is all
 * there, and collected in the stream only when it arrives split.  Payload
 * bytes are unmasked in bulk into the buffer that will be handed out, and
 * text is validated as it lands there, so an invalid byte is reported
 * when it arrives.
 *
 * Every protocol rule is checked in one place: header rules in the
 * check_* functions below (each called as soon as the byte it needs is
 * there), payload rules in decode_control() and decode_data().  Two fast
 * paths at the entry take the commonest calls in one step: a whole small
 * data frame (decode_whole_frame(), which accepts only headers that pass
 * every rule and leaves anything else to the general path), and the
 * middle of a data frame (continue_data()).
 */
#include "internal.h"
#include "close.h"
#include "deflate.h"
#include "mask.h"
#include "utf8.h"

#include <string.h>

/** Below this many bytes, unmasking is done inline, without the
    dispatch to the vector code. */
#define SMALL_PIECE 64

/** The statuses of the *_FRAGMENT family: a flag over the opcode. */
#define FIRST_FRAGMENT 0x10
#define NEXT_FRAGMENT 0x20
#define LAST_FRAGMENT 0x40

/** What parse_header() found. */
enum header_result
{
  HEADER_INCOMPLETE,
  HEADER_COMPLETE,
  HEADER_ERROR
};

/** Rules decided by the first header byte (RFC 6455 5.2, 5.4, 5.5). */
static enum MHD_WEBSOCKET_STATUS
check_first_byte (const struct MHD_WebSocketStream *ws, uint8_t b0)
{
  unsigned opcode = b0 & WS_OPCODE_BITS;

  /* No RSV bit may be set, except RSV1 on the first frame of a data
     message once permessage-deflate is enabled (RFC 7692 section 6). */
  if ((0 != (b0 & WS_RSV_BITS))
      && ((NULL == ws->pmd) || (WS_RSV1 != (b0 & WS_RSV_BITS))
          || ((WS_OP_TEXT != opcode) && (WS_OP_BINARY != opcode))))
    return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
  switch (opcode)
  {
  case WS_OP_CLOSE:
  case WS_OP_PING:
  case WS_OP_PONG:
    /* Control frames must not be fragmented. */
    return (0 != (b0 & WS_FIN)) ? MHD_WEBSOCKET_STATUS_OK
                                : MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
  case WS_OP_CONTINUATION:
    if (0 == ws->msg_opcode)
      return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
    break;
  case WS_OP_TEXT:
  case WS_OP_BINARY:
    if (0 != ws->msg_opcode)
      return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
    break;
  default:
    return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR; /* reserved opcode */
  }
  /* After a close frame only control frames may follow. */
  if (MHD_WEBSOCKET_VALIDITY_ONLY_VALID_FOR_CONTROL_FRAMES == ws->validity)
    return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
  return MHD_WEBSOCKET_STATUS_OK;
}

/** Rules decided by the second header byte (mask bit, 7-bit length). */
static enum MHD_WEBSOCKET_STATUS
check_second_byte (const struct MHD_WebSocketStream *ws, uint8_t b0, uint8_t b1)
{
  bool want_mask = 0 == (ws->flags & MHD_WEBSOCKET_FLAG_CLIENT);
  unsigned len7 = b1 & WS_LEN7_BITS;
  unsigned opcode = b0 & WS_OPCODE_BITS;

  /* Clients mask, servers do not (5.1). */
  if (want_mask != (0 != (b1 & WS_MASK_BIT)))
    return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
  if (ws_opcode_is_control (opcode))
  {
    if (len7 > WS_MAX_CONTROL_PAYLOAD)
      return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
    /* A close payload starts with a 2-byte code (5.5.1). */
    if ((WS_OP_CLOSE == opcode) && (1 == len7))
      return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
  }
  return MHD_WEBSOCKET_STATUS_OK;
}

/**
 * The announced length on its own, judged once the whole length field
 * is there: the frame's payload against the stream's limit.  Control
 * frames count too (the limit bounds every payload handed out).
 */
static enum MHD_WEBSOCKET_STATUS
check_frame_length (const struct MHD_WebSocketStream *ws, uint64_t len)
{
  if (len > ws->payload_limit)
    return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;
  /* Where size_t is narrower than 64 bits, a payload that could never be
     buffered (with the held UTF-8 bytes and the NUL) is too big. */
  if (len > (uint64_t) (SIZE_MAX - 8))
    return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;
  return MHD_WEBSOCKET_STATUS_OK;
}

/**
 * A data frame that fits the limit alone may still make the payload
 * handed out too big: it adds to the bytes already buffered for it (the
 * reassembled message, or with WANT_FRAGMENTS the start of a character
 * held back from the previous fragment).  The original judged this once
 * the whole header, masking key included, was read; so do we.
 */
static enum MHD_WEBSOCKET_STATUS
check_message_length (const struct MHD_WebSocketStream *ws, uint8_t b0,
                      uint64_t len)
{
  uint64_t total;

  if (ws_opcode_is_control (b0 & WS_OPCODE_BITS))
    return MHD_WEBSOCKET_STATUS_OK;
  total = len + ws->msg_len;
  if (total > ws->payload_limit)
    return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;
  if (total > (uint64_t) (SIZE_MAX - 8))
    return MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED;
  return MHD_WEBSOCKET_STATUS_OK;
}

/**
 * Parses the @a have header bytes at @a h, checking each rule at the
 * point where the original library did, so that an error reports the
 * same offset: a rule of the first or second byte as soon as that byte
 * is there (the byte is not consumed), a length rule once the whole
 * length field is there (the field is consumed), the message limit once
 * the whole header is there.  Parsing again with more bytes repeats the
 * same verdicts; the only change to the stream is the validity a close
 * frame's first byte sets, which is the same every time.
 *
 * @param[out] err the error, for HEADER_ERROR
 * @param[out] err_at the index in @a h where the error is reported: the
 *             bytes before it count as consumed
 */
static enum header_result
parse_header (struct MHD_WebSocketStream *ws, const uint8_t *h, size_t have,
              enum MHD_WEBSOCKET_STATUS *err, size_t *err_at)
{
  struct ws_frame_header *f = &ws->frame;
  unsigned len7;
  size_t len_end; /* index after the length bytes */
  uint64_t len;
  size_t i;
  bool plain;

#define FAIL_AT(idx, status)                                                   \
  do                                                                           \
  {                                                                            \
    *err = (status);                                                           \
    *err_at = (idx);                                                           \
    return HEADER_ERROR;                                                       \
  } while (0)
#define CHECK_AT(idx, expr)                                                    \
  do                                                                           \
  {                                                                            \
    enum MHD_WEBSOCKET_STATUS st_ = (expr);                                    \
    if (MHD_WEBSOCKET_STATUS_OK != st_)                                        \
      FAIL_AT ((idx), st_);                                                    \
  } while (0)

  if (have < 1)
    return HEADER_INCOMPLETE;
  CHECK_AT (0, check_first_byte (ws, h[0]));
  /* As in the original: a close frame ends the data frames as soon as
     its first byte is read (RFC 6455 5.5.1). */
  if (WS_OP_CLOSE == (h[0] & WS_OPCODE_BITS))
    ws->validity = MHD_WEBSOCKET_VALIDITY_ONLY_VALID_FOR_CONTROL_FRAMES;
  if (have < 2)
    return HEADER_INCOMPLETE;
  CHECK_AT (1, check_second_byte (ws, h[0], h[1]));

  len7 = h[1] & WS_LEN7_BITS;
  if (len7 < WS_LEN7_16BIT)
  {
    len_end = 2;
    len = len7;
  }
  else if (WS_LEN7_16BIT == len7)
  {
    len_end = 4;
    if (have < len_end)
      return HEADER_INCOMPLETE;
    len = ((unsigned) h[2] << 8) | h[3];
    /* Lengths must use the shortest form (5.2). */
    if (len < WS_LEN7_16BIT)
      FAIL_AT (len_end, MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR);
  }
  else
  {
    len_end = 10;
    if (have < len_end)
      return HEADER_INCOMPLETE;
    /* The top bit must be 0 (5.2); judged with the whole field, as the
       original did. */
    if (0 != (h[2] & 0x80u))
      FAIL_AT (len_end, MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR);
    len = 0;
    for (i = 2; i < 10; i++)
      len = (len << 8) | h[i];
    if (len <= 0xFFFFu)
      FAIL_AT (len_end, MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR);
  }
  /* Compressed bytes are not kept: the limit bounds what they inflate
     to (deflate.c). */
  plain = (0 == (h[0] & WS_RSV1))
          && ! (ws->msg_compressed
                && (WS_OP_CONTINUATION == (h[0] & WS_OPCODE_BITS)));
  if (plain)
    CHECK_AT (len_end, check_frame_length (ws, len));

  f->masked = 0 != (h[1] & WS_MASK_BIT);
  f->size = (uint8_t) (len_end + (f->masked ? 4 : 0));
  if (have < f->size)
    return HEADER_INCOMPLETE;
  if (plain)
    CHECK_AT (f->size, check_message_length (ws, h[0], len));
  if (f->masked)
    memcpy (f->mask, h + len_end, 4);
  f->opcode = h[0] & WS_OPCODE_BITS;
  f->fin = 0 != (h[0] & WS_FIN);
  f->compressed = 0 != (h[0] & WS_RSV1);
  f->payload_len = len;
  return HEADER_COMPLETE;
#undef CHECK_AT
#undef FAIL_AT
}

/** Copies @a n payload bytes to @a dst, unmasking them if masked. */
static void
take_payload (const struct MHD_WebSocketStream *ws, void *dst,
              const uint8_t *src, size_t n)
{
  if (! ws->frame.masked)
    memcpy (dst, src, n);
  else if (n < SMALL_PIECE)
    ws_mask_small (dst, src, n, ws->frame.mask, ws->frame_have);
  else
    ws_mask_copy (dst, src, n, ws->frame.mask, ws->frame_have);
}

/**
 * Hands the first @a n bytes of the message buffer to the caller.  The
 * buffer always has room for the NUL.
 */
static void
hand_out (struct MHD_WebSocketStream *ws, size_t n, char **payload,
          size_t *payload_len)
{
  if (0 == n)
    return; /* outputs stay NULL and 0 */
  ws->msg_buf[n] = '\0';
  *payload = ws->msg_buf;
  *payload_len = n;
  ws->msg_buf = NULL;
  ws->msg_cap = 0;
  ws->msg_room = 0;
}

void
ws_decode_drop_message (struct MHD_WebSocketStream *ws)
{
  ws_free (ws, ws->msg_buf);
  ws->msg_buf = NULL;
  ws->msg_len = 0;
  ws->msg_cap = 0;
  ws->msg_room = 0;
  ws->msg_opcode = 0;
  ws->msg_fragment_returned = false;
  ws->msg_grow_due = false;
  ws->msg_utf8 = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  ws_pmd_message_done (ws);
}

/** How far the message buffer may run ahead of the bytes that arrived
    (twice them, plus this): the contract's bound on one allocation. */
#define GROW_SLACK ((size_t) 65536)

/**
 * Makes room in the message buffer for @a n more bytes of the current
 * frame and the NUL; with @a n 0, at the frame's header, makes the call
 * that the frame is due, if it can be made before any byte arrives.
 *
 * Where the calls fall is the original's (contract section 6): it
 * allocated the message buffer at the header of each non-empty data
 * frame, exactly the bytes so far plus that frame's plus the NUL, with
 * malloc for the first and realloc for the others.  begin_frame() marks
 * such a frame (msg_grow_due) and the call is made before its first
 * byte is stored, even when the buffer has room: a failure must come
 * at the same fragment as in the original.  What the call asks for:
 *
 * - the original's amount ("end", the message's bytes after this frame
 *   plus the NUL) for the buffer's first allocation, and whenever the
 *   frame ends the buffer's content (the last frame, or any frame with
 *   WANT_FRAGMENTS), since the buffer is handed out then;
 * - otherwise, when that amount no longer fits, twice the capacity (but
 *   at least that amount), so that a message of many fragments is
 *   copied few times; when it fits, the capacity it has (a realloc to
 *   the same size, which allocators answer without copying);
 * - never more than twice the bytes that have arrived plus GROW_SLACK
 *   (the contract: a header announcing 2^63-1 bytes costs nothing until
 *   they arrive).  A frame whose end lies beyond that is not allocated
 *   at its header but as its bytes arrive, by the same bound;
 * - never more than max_payload_size plus the NUL (the header checks
 *   made sure that the message fits it).
 */
static bool
msg_reserve (struct MHD_WebSocketStream *ws, size_t n)
{
  size_t have = ws->msg_len + n; /* bytes in the buffer once stored */
  /* No overflow: the header checks kept the frame under SIZE_MAX - 8. */
  size_t end =
    ws->msg_len + (size_t) (ws->frame.payload_len - ws->frame_have) + 1;
  size_t allow;
  size_t cap;

  if (! ws->msg_grow_due && (have < ws->msg_cap))
    return true;
  allow =
    (have <= (SIZE_MAX - GROW_SLACK) / 2) ? 2 * have + GROW_SLACK : SIZE_MAX;
  if (end > allow)
  {
    if (0 == n)
      return true; /* too big to ask for before its bytes come */
    cap = allow;
  }
  else if ((NULL == ws->msg_buf) || ws->frame.fin
           || (0 != (ws->flags & MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS)))
    cap = end;
  else if (end <= ws->msg_cap)
    cap = ws->msg_cap;
  else
  {
    cap = (ws->msg_cap <= SIZE_MAX / 2) ? 2 * ws->msg_cap : SIZE_MAX;
    if (cap > allow)
      cap = allow;
    if ((uint64_t) cap - 1 > ws->payload_limit)
      cap = (size_t) ws->payload_limit + 1;
    if (cap < end)
      cap = end;
  }
  if (! ws_msg_set_cap (ws, cap))
    return false;
  ws->msg_grow_due = false;
  ws->msg_room = cap;
  return true;
}

/**
 * Both payload readers take the @a n bytes at @a in that belong to the
 * frame and advance @a *pos past what they consumed; on an error they
 * leave it at the offending byte, on MEMORY_ERROR untouched.
 */

/**
 * Reads control frame payload: at most 125 bytes, collected in the
 * stream and copied out whole.  A close frame's code is judged when its
 * second byte arrives and its reason text as it arrives.
 */
static enum MHD_WEBSOCKET_STATUS
decode_control (struct MHD_WebSocketStream *ws, const uint8_t *in, size_t n,
                size_t *pos, char **payload, size_t *payload_len)
{
  size_t have = (size_t) ws->frame_have;
  size_t total = (size_t) ws->frame.payload_len;
  char *out = NULL;

  /* Allocate before consuming, so that a failure leaves the input to be
     fed again. */
  if ((have + n == total) && (0 != total))
  {
    out = ws_malloc (ws, total + 1);
    if (NULL == out)
      return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  }
  take_payload (ws, ws->ctrl + have, in, n);
  if (WS_OP_CLOSE == ws->frame.opcode)
  {
    if ((have < 2) && (have + n >= 2)
        && ! ws_close_code_valid_on_wire (
          ((unsigned) (uint8_t) ws->ctrl[0] << 8) | (uint8_t) ws->ctrl[1]))
    {
      ws_free (ws, out);
      *pos += 1 - have; /* the code's second byte */
      return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
    }
    if (have + n > 2)
    {
      size_t from = (have > 2) ? have : 2;
      size_t count = have + n - from;
      size_t ok = ws_utf8_check (
        &ws->ctrl_utf8, (const unsigned char *) ws->ctrl + from, count);
      if (ok != count)
      {
        ws_free (ws, out);
        *pos += from - have + ok;
        return MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR;
      }
    }
  }
  ws->frame_have += n;
  *pos += n;
  if (ws->frame_have < total)
    return MHD_WEBSOCKET_STATUS_OK;

  /* The frame is complete. */
  if (MHD_WEBSOCKET_UTF8STEP_NORMAL != ws->ctrl_utf8)
  {
    /* The reason text ends inside a character: its last byte tells. */
    ws_free (ws, out);
    *pos -= 1;
    return MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR;
  }
  ws->state = WS_DECODE_HEADER;
  if (WS_OP_CLOSE == ws->frame.opcode)
    ws->validity = MHD_WEBSOCKET_VALIDITY_ONLY_VALID_FOR_CONTROL_FRAMES;
  if (NULL != out)
  {
    memcpy (out, ws->ctrl, total);
    out[total] = '\0';
    *payload = out;
    *payload_len = total;
  }
  return (enum MHD_WEBSOCKET_STATUS) ws->frame.opcode;
}

/**
 * Reads compressed payload: unmasked in pieces on the stack and
 * inflated into the message buffer (deflate.c).
 */
static enum MHD_WEBSOCKET_STATUS
decode_compressed (struct MHD_WebSocketStream *ws, const uint8_t *in, size_t n,
                   size_t *pos)
{
  uint8_t piece[WS_PMD_CHUNK];

  while (0 != n)
  {
    size_t k = (n < sizeof (piece)) ? n : sizeof (piece);
    size_t used;
    enum MHD_WEBSOCKET_STATUS st;

    take_payload (ws, piece, in, k);
    st = ws_pmd_inflate (ws, piece, k, &used);
    ws->frame_have += used;
    *pos += used;
    if (MHD_WEBSOCKET_STATUS_OK != st)
      return st;
    in += k;
    n -= k;
  }
  /* Output held back for want of memory comes out before the frame
     ends, so that what a fragment delivers does not depend on it. */
  if (ws->frame_have == ws->frame.payload_len)
  {
    size_t used;
    return ws_pmd_inflate (ws, NULL, 0, &used);
  }
  return MHD_WEBSOCKET_STATUS_OK;
}

/**
 * Reads data frame payload into the message buffer.  Returns OK when
 * nothing is to be handed out yet.
 */
static enum MHD_WEBSOCKET_STATUS
decode_data (struct MHD_WebSocketStream *ws, const uint8_t *in, size_t n,
             size_t *pos, char **payload, size_t *payload_len)
{
  bool text = WS_OP_TEXT == ws->msg_opcode;
  int status;
  size_t keep;

  if (ws->msg_compressed)
  {
    status = decode_compressed (ws, in, n, pos);
    if (MHD_WEBSOCKET_STATUS_OK != status)
      return (enum MHD_WEBSOCKET_STATUS) status;
  }
  else if (0 != n)
  {
    char *dst;
    if (! msg_reserve (ws, n))
      return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
    dst = ws->msg_buf + ws->msg_len;
    if (text)
    {
      /* Unmasked and validated in one pass over the bytes. */
      size_t ok = ws_utf8_unmask_check (
        &ws->msg_utf8, (unsigned char *) dst, in, n,
        ws->frame.masked ? ws->frame.mask : NULL, ws->frame_have);
      if (ok != n)
      {
        *pos += ok;
        return MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR;
      }
    }
    else
      take_payload (ws, dst, in, n);
    ws->msg_len += n;
    ws->frame_have += n;
    *pos += n;
  }
  else if (ws->msg_grow_due && ! msg_reserve (ws, 0))
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR; /* at the frame's header */
  if (ws->frame_have < ws->frame.payload_len)
    return MHD_WEBSOCKET_STATUS_OK;

  /* The frame is complete. */
  ws->state = WS_DECODE_HEADER;
  if (ws->frame.fin)
  {
    /* Compressed data must end on a block boundary (deflate.c). */
    status =
      ws->msg_compressed ? ws_pmd_inflate_end (ws) : MHD_WEBSOCKET_STATUS_OK;
    if (MHD_WEBSOCKET_STATUS_MEMORY_ERROR == status)
    {
      /* Retried with the tail: the frame stays complete. */
      ws->state = WS_DECODE_PAYLOAD;
      return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
    }
    /* Nor may text end inside a character. */
    if ((MHD_WEBSOCKET_STATUS_OK == status)
        && (MHD_WEBSOCKET_UTF8STEP_NORMAL != ws->msg_utf8))
      status = MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR;
    if (MHD_WEBSOCKET_STATUS_OK != status)
    {
      /* A message's end is judged on the frame's last byte (the
         header's, when the frame is empty), not consumed.  A retry
         after MEMORY_ERROR brings none of it: that byte was consumed
         by an earlier call. */
      if (0 != *pos)
        *pos -= 1;
      return (enum MHD_WEBSOCKET_STATUS) status;
    }
    status = ws->msg_opcode;
    if (ws->msg_fragment_returned)
      status |= LAST_FRAGMENT;
    hand_out (ws, ws->msg_len, payload, payload_len);
    ws_decode_drop_message (ws);
    return (enum MHD_WEBSOCKET_STATUS) status;
  }
  if (0 == (ws->flags & MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS))
    return MHD_WEBSOCKET_STATUS_OK; /* keep assembling */

  status = ws->msg_opcode
           | (ws->msg_fragment_returned ? NEXT_FRAGMENT : FIRST_FRAGMENT);
  ws->msg_fragment_returned = true;
  /* A character cut by the fragment boundary goes out whole with the
     next fragment. */
  keep = text ? ws_utf8_pending (ws->msg_utf8) : 0;
  if (ws->msg_len > keep)
  {
    size_t out_len = ws->msg_len - keep;
    memcpy (ws->held, ws->msg_buf + out_len, keep);
    hand_out (ws, out_len, payload, payload_len);
    ws->msg_len = keep;
  }
  return (enum MHD_WEBSOCKET_STATUS) status;
}

/** Marks the stream broken and prepares the outputs for an error. */
static enum MHD_WEBSOCKET_STATUS
decode_fail (struct MHD_WebSocketStream *ws, enum MHD_WEBSOCKET_STATUS status,
             char **payload, size_t *payload_len)
{
  ws->validity = MHD_WEBSOCKET_VALIDITY_INVALID;
  ws_decode_drop_message (ws);
  if (0 != (ws->flags & MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR))
  {
    unsigned code = MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR;
    uint8_t be[2];
    if (MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR == status)
      code = MHD_WEBSOCKET_CLOSEREASON_MALFORMED_UTF8;
    else if (MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED == status)
      code = MHD_WEBSOCKET_CLOSEREASON_MAXIMUM_ALLOWED_PAYLOAD_SIZE_EXCEEDED;
    be[0] = (uint8_t) (code >> 8);
    be[1] = (uint8_t) code;
    /* Without memory there is no close frame; the error stands. */
    (void) ws_build_frame (ws, WS_FIN | WS_OP_CLOSE, be, 2, NULL, 0, payload,
                           payload_len);
  }
  return status;
}

/** Sets up the stream for the payload of the frame just parsed. */
static void
begin_frame (struct MHD_WebSocketStream *ws)
{
  ws->state = WS_DECODE_PAYLOAD;
  ws->frame_have = 0;
  if (ws_opcode_is_control (ws->frame.opcode))
    ws->ctrl_utf8 = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  else
  {
    if (WS_OP_CONTINUATION != ws->frame.opcode)
    {
      ws->msg_opcode = ws->frame.opcode; /* a message starts */
      ws->msg_compressed = ws->frame.compressed;
    }
    /* The original allocated at each non-empty data frame's header; so
       does msg_reserve() (a compressed message, which the original did
       not have, grows with what inflates instead). */
    ws->msg_grow_due = (0 != ws->frame.payload_len) && ! ws->msg_compressed;
    if (ws->msg_grow_due || ws->msg_compressed)
      ws->msg_room = 0;
  }
}

/**
 * The middle of a data frame in one step: all of the input belongs to
 * the frame, does not end it, and fits the message buffer as it is.
 * Payload rules need nothing more then, except for text, whose error
 * is reported as decode_data() would.
 *
 * @return true when it took the input (then *pos is its length); false
 *         with *pos 0 when the general path must decide, or with *pos
 *         at the bad byte of invalid text
 */
static bool
continue_data (struct MHD_WebSocketStream *ws, const uint8_t *in, size_t n,
               size_t *pos)
{
  unsigned char *dst;

  /* msg_room is 0 without a buffer, for a compressed message and until
     the frame had its allocator call; msg_len + n cannot overflow, as
     the frame's end fits a size_t (parse_header). */
  if (ws_opcode_is_control (ws->frame.opcode)
      || (n >= ws->frame.payload_len - ws->frame_have)
      || (ws->msg_len + n >= ws->msg_room) || (0 == n))
    return false;
  dst = (unsigned char *) ws->msg_buf + ws->msg_len;
  if (WS_OP_TEXT == ws->msg_opcode)
  {
    size_t ok = ws_utf8_unmask_check (&ws->msg_utf8, dst, in, n,
                                      ws->frame.masked ? ws->frame.mask : NULL,
                                      ws->frame_have);
    if (ok != n)
    {
      *pos = ok;
      return false;
    }
  }
  else
    take_payload (ws, dst, in, n);
  ws->msg_len += n;
  ws->frame_have += n;
  *pos = n;
  return true;
}

/**
 * The common case in one step: a whole unfragmented data frame at the
 * start of the input, while no message is open and no close frame was
 * seen.  Every header rule is checked here too (the bytes that pass them
 * all are few: RSV 0, FIN, opcode text or binary, the mask bit of the
 * stream's role, a length in its shortest form within the limit).
 * Anything else, and any failure (invalid text), is left untouched to
 * the general path, which then reports it exactly.  Without memory it
 * consumes nothing.
 *
 * @return the frame's status, MEMORY_ERROR, or OK when the general path
 *         must decide
 */
static enum MHD_WEBSOCKET_STATUS
decode_whole_frame (struct MHD_WebSocketStream *ws, const uint8_t *in,
                    size_t avail, size_t *pos, char **payload,
                    size_t *payload_len)
{
  unsigned b0 = in[0];
  unsigned b1 = in[1];
  unsigned want_mask = ws->want_mask_bit;
  size_t hsize = 2;
  size_t len = b1 & WS_LEN7_BITS;
  const uint8_t *key = NULL;
  const uint8_t *src;
  char *out;

  /* FIN with text or binary, RSV clear: 0x81 or 0x82. */
  if (b0 - (WS_FIN | WS_OP_TEXT) > 1u)
    return MHD_WEBSOCKET_STATUS_OK;
  /* No open message also means no message buffer and no held bytes
     (ws_decode_drop_message clears them together). */
  if ((want_mask != (b1 & WS_MASK_BIT)) || (0 != ws->msg_opcode)
      || (MHD_WEBSOCKET_VALIDITY_VALID != ws->validity))
    return MHD_WEBSOCKET_STATUS_OK;
  if (len >= WS_LEN7_16BIT)
  {
    if ((WS_LEN7_64BIT == len) || (avail < 4))
      return MHD_WEBSOCKET_STATUS_OK;
    len = ((size_t) in[2] << 8) | in[3];
    if (len < WS_LEN7_16BIT)
      return MHD_WEBSOCKET_STATUS_OK; /* not the shortest form */
    hsize = 4;
  }
  if (len > ws->payload_limit)
    return MHD_WEBSOCKET_STATUS_OK;
  if (0 != want_mask)
  {
    key = in + hsize;
    hsize += 4;
  }
  if (avail < hsize + len) /* len < 64 KiB: no overflow */
    return MHD_WEBSOCKET_STATUS_OK;
  src = in + hsize;
  if (0 == len)
    out = NULL; /* an empty payload is handed out as NULL */
  else
  {
    out = ws->malloc_cb (len + 1);
    if (NULL == out)
    {
      /* Nothing consumed: the caller may feed the same bytes again. */
      *payload = NULL;
      *payload_len = 0;
      return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
    }
    if ((WS_FIN | WS_OP_TEXT) == b0)
    {
      int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
      if ((len
           != ws_utf8_unmask_check (&step, (unsigned char *) out, src, len, key,
                                    0))
          || (MHD_WEBSOCKET_UTF8STEP_NORMAL != step))
      {
        ws->free_cb (out);
        return MHD_WEBSOCKET_STATUS_OK;
      }
    }
    else if (NULL == key)
      memcpy (out, src, len);
    else if (len < SMALL_PIECE)
      ws_mask_small ((uint8_t *) out, src, len, key, 0);
    else
      ws_mask_copy (out, src, len, key, 0);
    out[len] = '\0';
  }
  *payload = out;
  *payload_len = len;
  *pos = hsize + len;
  return (enum MHD_WEBSOCKET_STATUS) (b0 & WS_OPCODE_BITS);
}

/**
 * The general decoder: any split, any frame kind, every rule.  Kept out
 * of line so that the entry point's fast paths stay cheap to call.
 */
WS_NOINLINE static enum MHD_WEBSOCKET_STATUS
decode_general (struct MHD_WebSocketStream *ws, const uint8_t *in,
                size_t streambuf_len, size_t *streambuf_read_len,
                char **payload, size_t *payload_len)
{
  size_t pos = 0;

  *streambuf_read_len = 0;
  *payload = NULL;
  *payload_len = 0;

  for (;;)
  {
    enum MHD_WEBSOCKET_STATUS status;
    uint64_t left;
    size_t n;

    /* A compressed message whose end failed for memory is finished by
       the next call, whatever it brings. */
    if ((pos == streambuf_len)
        && ! ((WS_DECODE_PAYLOAD == ws->state) && ws->msg_compressed
              && (ws->frame_have == ws->frame.payload_len)))
      break;
    if (WS_DECODE_HEADER == ws->state)
    {
      /* A frame with an empty payload completes right after its header,
         in this same iteration. */
      const uint8_t *h;
      size_t have;
      size_t old = ws->hdr_have;
      size_t err_at;
      enum header_result r;

      if (0 == old)
      {
        /* The usual case: parse in place. */
        h = in + pos;
        have = streambuf_len - pos;
        if (have > WS_MAX_HEADER_SIZE)
          have = WS_MAX_HEADER_SIZE;
      }
      else
      {
        size_t take = streambuf_len - pos;
        if (take > WS_MAX_HEADER_SIZE - old)
          take = WS_MAX_HEADER_SIZE - old;
        memcpy (ws->hdr + old, in + pos, take);
        h = ws->hdr;
        have = old + take;
      }
      r = parse_header (ws, h, have, &status, &err_at);
      if (HEADER_ERROR == r)
      {
        /* Earlier calls passed the bytes before `old`, so err_at >= old. */
        *streambuf_read_len = pos + err_at - old;
        return decode_fail (ws, status, payload, payload_len);
      }
      if (HEADER_INCOMPLETE == r)
      {
        if (h != ws->hdr)
          memcpy (ws->hdr, h, have);
        ws->hdr_have = (uint8_t) have;
        pos = streambuf_len;
        break;
      }
      pos += ws->frame.size - old;
      ws->hdr_have = 0;
      begin_frame (ws);
    }

    left = ws->frame.payload_len - ws->frame_have;
    n = streambuf_len - pos;
    if (n > left)
      n = (size_t) left;
    if (ws_opcode_is_control (ws->frame.opcode))
      status = decode_control (ws, in + pos, n, &pos, payload, payload_len);
    else
      status = decode_data (ws, in + pos, n, &pos, payload, payload_len);
    if (MHD_WEBSOCKET_STATUS_MEMORY_ERROR == status)
    {
      /* Nothing of this piece was consumed; the stream stays usable. */
      *streambuf_read_len = pos;
      return status;
    }
    if (status < 0)
    {
      *streambuf_read_len = pos;
      return decode_fail (ws, status, payload, payload_len);
    }
    if (MHD_WEBSOCKET_STATUS_OK != status)
    {
      *streambuf_read_len = pos;
      return status;
    }
  }
  *streambuf_read_len = pos;
  return MHD_WEBSOCKET_STATUS_OK;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_decode (struct MHD_WebSocketStream *ws, const char *streambuf,
                      size_t streambuf_len, size_t *streambuf_read_len,
                      char **payload, size_t *payload_len)
{
  const uint8_t *in = (const uint8_t *) streambuf;
  size_t pos = 0;

  if ((NULL == ws) || (NULL == streambuf_read_len) || (NULL == payload)
      || (NULL == payload_len) || ((NULL == streambuf) && (0 != streambuf_len)))
  {
    /* The outputs there are are reset all the same. */
    if (NULL != streambuf_read_len)
      *streambuf_read_len = 0;
    if (NULL != payload)
      *payload = NULL;
    if (NULL != payload_len)
      *payload_len = 0;
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  }
  /* Each way out sets all three outputs (the general path first resets
     them), so that the fast paths write each only once. */
  if (MHD_WEBSOCKET_VALIDITY_INVALID == ws->validity)
  {
    *streambuf_read_len = 0;
    *payload = NULL;
    *payload_len = 0;
    ws_decode_drop_message (ws); /* after stream_invalidate */
    return MHD_WEBSOCKET_STATUS_STREAM_BROKEN;
  }
  if (WS_DECODE_PAYLOAD == ws->state)
  {
    bool took = continue_data (ws, in, streambuf_len, &pos);
    if (took || (0 != pos))
    {
      *streambuf_read_len = pos;
      *payload = NULL;
      *payload_len = 0;
      if (took)
        return MHD_WEBSOCKET_STATUS_OK;
      return decode_fail (ws, MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR, payload,
                          payload_len);
    }
  }
  else if ((0 == ws->hdr_have) && (streambuf_len >= 2))
  {
    /* It sets payload and payload_len when it decides. */
    enum MHD_WEBSOCKET_STATUS st =
      decode_whole_frame (ws, in, streambuf_len, &pos, payload, payload_len);
    if (MHD_WEBSOCKET_STATUS_OK != st)
    {
      *streambuf_read_len = pos;
      return st;
    }
  }

  return decode_general (ws, in, streambuf_len, streambuf_read_len, payload,
                         payload_len);
}
