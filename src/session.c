/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file session.c
 * @brief The sans-I/O session (MHD_websocket_session_*): one WebSocket
 *        connection's protocol state above the codec.
 *
 * Input goes through the stream's decoder; pings and closes are
 * answered here.  Output is a set of queues of frames that the caller
 * peeks (pending) and retires (sent) as it writes them:
 *
 *   wire  -> ctrl (pongs, pings) -> data (messages) -> the close frame
 *
 * A frame moves to the wire queue when pending() hands it out, and from
 * then on keeps its place: control frames overtake queued data, but
 * never a frame the caller may already be writing.  The close frame is
 * always the last frame; after an error (a protocol error of the peer,
 * a send refused at the hard bound, a failed allocation) the data not
 * yet handed out is dropped so that it goes out at once.
 *
 * Closing has one path, start_close(), whoever starts it: the close
 * frame is built in a buffer inside the session, so that closing never
 * needs memory.  The session ends once its close went out and the
 * peer's close (or the end of its byte stream) came in, or at the
 * close timeout.
 */
#include "session.h"
#include "close.h"
#include "deflate.h"
#include "mask.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

#define WS_NO_DEADLINE ((unsigned long long) -1)

/* ------------------------------------------------------------ config */

_MHD_EXTERN struct MHD_WebSocketSessionConfig *
MHD_websocket_session_config_create (void)
{
  struct MHD_WebSocketSessionConfig *c = malloc (sizeof (*c));

  if (NULL == c)
    return NULL;
  memset (c, 0, sizeof (*c));
  c->soft_bound = (size_t) 1 << 20;
  c->hard_bound = (size_t) 16 << 20;
  c->close_on_hard_bound = true;
  c->close_timeout_ms = 2000;
  c->max_pongs = 8;
  return c;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_session_config_set (struct MHD_WebSocketSessionConfig *config,
                                  enum MHD_WEBSOCKET_SESSION_OPTION option,
                                  unsigned long long value)
{
  if (NULL == config)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  switch (option)
  {
  case MHD_WEBSOCKET_SESSION_OPTION_SOFT_BOUND:
    if (value > SIZE_MAX)
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    config->soft_bound = (size_t) value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SESSION_OPTION_HARD_BOUND:
    if (value > SIZE_MAX)
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    config->hard_bound = (size_t) value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SESSION_OPTION_CLOSE_ON_HARD_BOUND:
    if (value > 1)
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    config->close_on_hard_bound = 1 == value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SESSION_OPTION_IDLE_TIMEOUT_MS:
    config->idle_timeout_ms = value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SESSION_OPTION_PING_INTERVAL_MS:
    config->ping_interval_ms = value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SESSION_OPTION_CLOSE_TIMEOUT_MS:
    config->close_timeout_ms = value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SESSION_OPTION_MAX_PONGS_QUEUED:
    /* RFC 6455 5.5.2: pings must be answered; 0 would answer none. */
    if ((0 == value) || (value > 0xFFFFu))
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    config->max_pongs = (unsigned int) value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SESSION_OPTION_EMPTY_CLOSE_CODE:
    if ((0 != value)
        && ((value >= 5000)
            || ! ws_close_code_valid_on_wire ((unsigned) value)))
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    config->empty_close_code = (unsigned short) value;
    return MHD_WEBSOCKET_STATUS_OK;
  case MHD_WEBSOCKET_SESSION_OPTION_ECHO_CLOSE_REASON:
    if (value > 1)
      return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
    config->echo_close_reason = 1 == value;
    return MHD_WEBSOCKET_STATUS_OK;
  }
  return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
}

_MHD_EXTERN void
MHD_websocket_session_config_set_callbacks (
  struct MHD_WebSocketSessionConfig *config,
  MHD_WebSocketMessageCallback message_cb, MHD_WebSocketEndCallback end_cb)
{
  if (NULL == config)
    return;
  config->message_cb = message_cb;
  config->end_cb = end_cb;
}

_MHD_EXTERN void
MHD_websocket_session_config_free (struct MHD_WebSocketSessionConfig *config)
{
  free (config);
}

/* ------------------------------------------------------------ queues */

static void
q_push (struct ws_outq *q, struct ws_out *o)
{
  o->next = NULL;
  if (NULL == q->tail)
    q->head = o;
  else
    q->tail->next = o;
  q->tail = o;
}

static struct ws_out *
q_pop (struct ws_outq *q)
{
  struct ws_out *o = q->head;

  if (NULL == o)
    return NULL;
  q->head = o->next;
  if (NULL == q->head)
    q->tail = NULL;
  o->next = NULL;
  return o;
}

/** Allocates through the stream's callbacks (the session's copy of
    them); NULL on failure. */
static void *
s_malloc (const struct MHD_WebSocketSession *s, size_t len)
{
  return s->malloc_cb (len);
}

static void
s_free (const struct MHD_WebSocketSession *s, void *buf)
{
  if (NULL != buf)
    s->free_cb (buf);
}

/** Releases a frame's bytes and its node. */
static void
out_free (struct MHD_WebSocketSession *s, struct ws_out *o)
{
  if (NULL != o->share)
    ws_bc_share_drop (o->share);
  else if (NULL != o->bc)
    MHD_websocket_broadcast_release (o->bc);
  s_free (s, o->owned);
  if (o != &s->close_node)
    s_free (s, o);
}

#ifdef WS_DEBUG
/** Sums a queue for the invariant check; @a skip bytes of its head are
    already retired. */
static void
q_sum (const struct MHD_WebSocketSession *s, const struct ws_outq *q,
       size_t skip, size_t *all, size_t *data, unsigned int *pongs,
       unsigned int *pings)
{
  const struct ws_out *o;

  for (o = q->head; NULL != o; o = o->next)
  {
    size_t left = o->len - skip;

    WS_ASSERT (skip < o->len);
    WS_ASSERT ((NULL == o->next) == (o == q->tail));
    /* A frame starts with a header of 2 to 14 bytes. */
    WS_ASSERT (o->len >= 2);
    WS_ASSERT ((WS_OUT_CLOSE == o->kind) == (o == &s->close_node));
    skip = 0;
    *all += left;
    if (WS_OUT_DATA == o->kind)
      *data += left;
    if (WS_OUT_PONG == o->kind)
      (*pongs)++;
    if (WS_OUT_PING == o->kind)
      (*pings)++;
  }
  WS_ASSERT ((NULL == q->head) == (NULL == q->tail));
}

/** The counters agree with the queues. */
static void
check_queues (const struct MHD_WebSocketSession *s)
{
  size_t all = 0;
  size_t data = 0;
  unsigned int pongs = 0;
  unsigned int pings = 0;
  bool close_on_wire =
    (NULL != s->wire.tail) && (&s->close_node == s->wire.tail);

  q_sum (s, &s->wire, s->wire_off, &all, &data, &pongs, &pings);
  q_sum (s, &s->ctrl, 0, &all, &data, &pongs, &pings);
  q_sum (s, &s->data, 0, &all, &data, &pongs, &pings);
  if (s->close_queued && ! s->close_sent && ! close_on_wire && ! s->ended)
    all += s->close_node.len;
  WS_ASSERT (0 == (s->wire.head ? 0 : s->wire_off));
  WS_ASSERT (all == s->pending);
  WS_ASSERT (data == s->queued);
  WS_ASSERT (pongs == s->pongs);
  WS_ASSERT (pings == s->pings);
  WS_ASSERT (s->queued <= s->hard_bound);
  WS_ASSERT (! s->ended || (0 == s->pending));
}
#define CHECK_QUEUES(s) check_queues (s)
#else
#define CHECK_QUEUES(s) ((void) 0)
#endif

/** Drops every frame of @a q (no part of them was written). */
static void
q_drop (struct MHD_WebSocketSession *s, struct ws_outq *q)
{
  struct ws_out *o;

  while (NULL != (o = q_pop (q)))
  {
    s->pending -= o->len;
    if (WS_OUT_DATA == o->kind)
      s->queued -= o->len;
    if (WS_OUT_PONG == o->kind)
      s->pongs--;
    if (WS_OUT_PING == o->kind)
      s->pings--;
    out_free (s, o);
  }
}

/** Queues a frame in @a q and counts it. */
static void
enqueue (struct MHD_WebSocketSession *s, struct ws_outq *q, struct ws_out *o)
{
  q_push (q, o);
  s->pending += o->len;
  if (WS_OUT_DATA == o->kind)
    s->queued += o->len;
  if (WS_OUT_PONG == o->kind)
    s->pongs++;
  if (WS_OUT_PING == o->kind)
    s->pings++;
  if (NULL != s->wake)
    s->wake (s->wake_arg);
}

/* ------------------------------------------------------------ frames */

static bool
is_client (const struct MHD_WebSocketSession *s)
{
  return s->client;
}

/**
 * Writes a frame with a payload in two pieces into @a out, which holds
 * the header and both pieces.  A client's frame is masked.
 * @return the frame's size, 0 when the random generator failed
 */
static size_t
build_frame (const struct MHD_WebSocketSession *s, uint8_t *out, uint8_t b0,
             const void *p1, size_t len1, const void *p2, size_t len2)
{
  uint8_t key[4];
  bool masked = is_client (s);
  size_t n;

  if (masked && ! ws_frame_mask_key (s->ws, key))
    return 0;
  n = ws_put_header (out, b0, (uint64_t) len1 + len2, masked ? key : NULL);
  if (0 != len1)
  {
    if (masked)
      ws_mask_copy (out + n, p1, len1, key, 0);
    else
      memcpy (out + n, p1, len1);
  }
  if (0 != len2)
  {
    if (masked)
      ws_mask_copy (out + n + len1, p2, len2, key, len1);
    else
      memcpy (out + n + len1, p2, len2);
  }
  return n + len1 + len2;
}

/**
 * A node with room for a frame of @a payload_len bytes after it.
 * @return NULL without memory (or for a length that cannot be held)
 */
static struct ws_out *
node_new (struct MHD_WebSocketSession *s, size_t payload_len,
          enum ws_out_kind kind)
{
  size_t room = sizeof (struct ws_out);
  struct ws_out *o;

  if (payload_len > SIZE_MAX - room - WS_MAX_HEADER_SIZE - 1)
    return NULL;
  room += WS_MAX_HEADER_SIZE + payload_len + 1;
  o = s_malloc (s, room);
  if (NULL == o)
    return NULL;
  memset (o, 0, sizeof (*o));
  o->kind = kind;
  o->data = (const char *) (o + 1);
  return o;
}

/** Builds a control frame (ping or pong) and queues it ahead of data.
    @return false without memory */
static bool
queue_control (struct MHD_WebSocketSession *s, enum ws_out_kind kind,
               const char *payload, size_t len)
{
  struct ws_out *o = node_new (s, len, kind);
  uint8_t op = (WS_OUT_PONG == kind) ? WS_OP_PONG : WS_OP_PING;

  if (NULL == o)
    return false;
  o->len = build_frame (s, (uint8_t *) (o + 1), (uint8_t) (WS_FIN | op),
                        payload, len, NULL, 0);
  if (0 == o->len)
  {
    out_free (s, o);
    return false;
  }
  enqueue (s, &s->ctrl, o);
  CHECK_QUEUES (s);
  return true;
}

/* ------------------------------------------------------------ ending */

/** Ends the session: frees its queues, then the end event. */
static void
end_session (struct MHD_WebSocketSession *s, enum MHD_WEBSOCKET_END_REASON why,
             unsigned short code)
{
  struct ws_out *o;

  if (s->ended)
    return;
  s->ended = true;
  s->why = why;
  s->end_code = code;
  while (NULL != (o = q_pop (&s->wire)))
    out_free (s, o);
  while (NULL != (o = q_pop (&s->ctrl)))
    out_free (s, o);
  while (NULL != (o = q_pop (&s->data)))
    out_free (s, o);
  s->wire_off = 0;
  s->pending = 0;
  s->queued = 0;
  s->pongs = 0;
  s->pings = 0;
  s->paused = false;
  CHECK_QUEUES (s);
  if (NULL != s->cfg.end_cb)
    s->cfg.end_cb (s->cls, s, why, code);
}

/** The closing handshake is complete when our close went out and the
    peer's came in. */
static void
maybe_end (struct MHD_WebSocketSession *s)
{
  if (s->close_sent && s->peer_done)
    end_session (s, s->why, s->end_code);
}

/* Whether a close for @a why drops the data not yet handed out: only
   when it cannot go out anyway (a peer that does not read, or our own
   failure).  A peer's protocol error still gets the answers to its valid
   messages before the close, in the order it sent them. */
static bool
drops_queued_data (enum MHD_WEBSOCKET_END_REASON why)
{
  return (MHD_WEBSOCKET_END_STALLED == why) || (MHD_WEBSOCKET_END_ERROR == why);
}

/**
 * The one path to closing: queues the close frame (@a frame when the
 * decoder made it, else one with @a code and @a reason) behind what is
 * queued, stops taking messages and arms the close timeout.  When the
 * peer stalled or we failed, the data not yet handed out is dropped.
 *
 * @return false when the session was already closing or has ended
 */
static bool
start_close (struct MHD_WebSocketSession *s, enum MHD_WEBSOCKET_END_REASON why,
             unsigned short code, const char *reason, size_t reason_len,
             const char *frame, size_t frame_len)
{
  uint8_t payload[2];
  size_t len;

  if (s->closing || s->ended)
    return false;
  s->closing = true;
  s->why = why;
  s->end_code = code;
  if ((NULL != frame) && (frame_len <= sizeof (s->close_buf))
      && (frame_len >= 2))
  {
    memcpy (s->close_buf, frame, frame_len);
    len = frame_len;
  }
  else
  {
    payload[0] = (uint8_t) (code >> 8);
    payload[1] = (uint8_t) code;
    if (reason_len > WS_MAX_CONTROL_PAYLOAD - 2)
      reason_len = WS_MAX_CONTROL_PAYLOAD - 2;
    len = build_frame (
      s, (uint8_t *) s->close_buf, (uint8_t) (WS_FIN | WS_OP_CLOSE), payload,
      (0 == code) ? 0 : 2, reason, (0 == code) ? 0 : reason_len);
    if (0 == len)
    {
      /* A client whose random generator failed cannot send a frame. */
      end_session (s, MHD_WEBSOCKET_END_ERROR, 0);
      return true;
    }
  }
  memset (&s->close_node, 0, sizeof (s->close_node));
  s->close_node.kind = WS_OUT_CLOSE;
  s->close_node.data = s->close_buf;
  s->close_node.len = len;
  if (drops_queued_data (why))
    q_drop (s, &s->data);
  s->close_queued = true;
  s->pending += len;
  if (NULL != s->wake)
    s->wake (s->wake_arg);
  s->close_deadline = s->now + s->cfg.close_timeout_ms;
  if (s->close_deadline < s->now)
    s->close_deadline = WS_NO_DEADLINE - 1;
  /* Keep reading: the peer's close and the end of its stream must be
     seen (what it sends meanwhile is dropped). */
  s->paused = false;
  CHECK_QUEUES (s);
  return true;
}

void
ws_session_start_close (struct MHD_WebSocketSession *s,
                        enum MHD_WEBSOCKET_END_REASON why, unsigned short code,
                        const char *reason, size_t reason_len)
{
  (void) start_close (s, why, code, reason, reason_len, NULL, 0);
}

/** Answers the peer's close frame (RFC 6455 5.5.1). */
static void
answer_close (struct MHD_WebSocketSession *s, const char *payload, size_t len)
{
  unsigned short code;
  const char *reason;
  size_t reason_len;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_split_close_reason (payload, len, &code, &reason,
                                           &reason_len))
  {
    (void) start_close (s, MHD_WEBSOCKET_END_PEER,
                        MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR, NULL, 0, NULL,
                        0);
    return;
  }
  if (MHD_WEBSOCKET_CLOSEREASON_NO_REASON == code)
    (void) start_close (s, MHD_WEBSOCKET_END_PEER, s->cfg.empty_close_code,
                        NULL, 0, NULL, 0);
  else if (code >= 5000)
    /* Codes from 5000 up pass the decoder unjudged, but RFC 6455 7.4.2
       defines none of them. */
    (void) start_close (s, MHD_WEBSOCKET_END_PEER,
                        MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR, NULL, 0, NULL,
                        0);
  else if (s->cfg.echo_close_reason)
    (void) start_close (s, MHD_WEBSOCKET_END_PEER, code, reason, reason_len,
                        NULL, 0);
  else
    (void) start_close (s, MHD_WEBSOCKET_END_PEER, code, NULL, 0, NULL, 0);
  /* The end event reports the code the peer sent. */
  s->end_code = code;
}

/* ------------------------------------------------------------ life */

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_session_create (struct MHD_WebSocketSession **session,
                              struct MHD_WebSocketStream *ws,
                              const struct MHD_WebSocketSessionConfig *config,
                              void *cls, unsigned long long now_ms)
{
  struct MHD_WebSocketSession *s;
  int bits;
  bool takeover;
  size_t min_size;

  if (NULL != session)
    *session = NULL;
  if ((NULL == session) || (NULL == ws) || (NULL == config)
      || (MHD_WEBSOCKET_VALIDITY_VALID != ws->validity))
  {
    if (NULL != ws)
      MHD_websocket_stream_free (ws);
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  }
  s = ws_malloc (ws, sizeof (*s));
  if (NULL == s)
  {
    MHD_websocket_stream_free (ws);
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  }
  memset (s, 0, sizeof (*s));
  s->ws = ws;
  s->malloc_cb = ws->malloc_cb;
  s->free_cb = ws->free_cb;
  s->client = 0 != (ws->flags & MHD_WEBSOCKET_FLAG_CLIENT);
  s->cfg = *config;
  s->soft_bound = config->soft_bound;
  s->hard_bound = (config->hard_bound < config->soft_bound)
                    ? config->soft_bound
                    : config->hard_bound;
  s->cls = cls;
  s->now = now_ms;
  s->last_heard = now_ms;
  s->last_ping = now_ms;
  s->why = MHD_WEBSOCKET_END_PEER;
  if (ws_pmd_tx_params (ws, &bits, &takeover, &min_size))
  {
    s->deflate = true;
    s->deflate_takeover = takeover;
    /* Broadcast frames are a server's, unmasked. */
    s->shares_packed = ! takeover && ! is_client (s);
    s->tx_bits = bits;
    s->tx_min_size = min_size;
  }
  *session = s;
  return MHD_WEBSOCKET_STATUS_OK;
}

_MHD_EXTERN void
MHD_websocket_session_free (struct MHD_WebSocketSession *s)
{
  struct MHD_WebSocketStream *ws;
  MHD_WebSocketFreeCallback free_cb;

  if (NULL == s)
    return;
  if (! s->ended)
    end_session (s, s->closing ? s->why : MHD_WEBSOCKET_END_APP, s->end_code);
  ws = s->ws;
  free_cb = ws->free_cb;
  MHD_websocket_stream_free (ws);
  free_cb (s);
}

_MHD_EXTERN struct MHD_WebSocketStream *
MHD_websocket_session_stream (struct MHD_WebSocketSession *s)
{
  return (NULL == s) ? NULL : s->ws;
}

_MHD_EXTERN void *
MHD_websocket_session_get_cls (struct MHD_WebSocketSession *s)
{
  return (NULL == s) ? NULL : s->cls;
}

_MHD_EXTERN void
MHD_websocket_session_set_cls (struct MHD_WebSocketSession *s, void *cls)
{
  if (NULL != s)
    s->cls = cls;
}

/* ------------------------------------------------------------ input */

static bool
is_data_status (enum MHD_WEBSOCKET_STATUS st)
{
  switch (st)
  {
  case MHD_WEBSOCKET_STATUS_TEXT_FRAME:
  case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
  case MHD_WEBSOCKET_STATUS_TEXT_FIRST_FRAGMENT:
  case MHD_WEBSOCKET_STATUS_BINARY_FIRST_FRAGMENT:
  case MHD_WEBSOCKET_STATUS_TEXT_NEXT_FRAGMENT:
  case MHD_WEBSOCKET_STATUS_BINARY_NEXT_FRAGMENT:
  case MHD_WEBSOCKET_STATUS_TEXT_LAST_FRAGMENT:
  case MHD_WEBSOCKET_STATUS_BINARY_LAST_FRAGMENT:
    return true;
  default:
    return false;
  }
}

/** The close code for a decoding error. */
static unsigned short
error_code (enum MHD_WEBSOCKET_STATUS st)
{
  switch (st)
  {
  case MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR:
    return MHD_WEBSOCKET_CLOSEREASON_MALFORMED_UTF8;
  case MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED:
    return MHD_WEBSOCKET_CLOSEREASON_MAXIMUM_ALLOWED_PAYLOAD_SIZE_EXCEEDED;
  default:
    return MHD_WEBSOCKET_CLOSEREASON_PROTOCOL_ERROR;
  }
}

/** The code of a close frame the decoder made (server frames are
    unmasked, so its bytes 2 and 3 are the code). */
static unsigned short
frame_code (const char *frame, size_t len, unsigned short fallback)
{
  if ((len < 4) || (0 != ((uint8_t) frame[1] & WS_MASK_BIT)))
    return fallback;
  return (unsigned short) (((uint8_t) frame[2] << 8) | (uint8_t) frame[3]);
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_session_receive (struct MHD_WebSocketSession *s, const char *data,
                               size_t len, unsigned long long now_ms)
{
  size_t offset = 0;

  if ((NULL == s) || ((NULL == data) && (0 != len)))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  s->now = now_ms;
  if (s->ended || s->peer_done)
    return MHD_WEBSOCKET_STATUS_OK;
  if (0 != len)
    s->last_heard = now_ms;
  while ((offset < len) && ! s->input_dead && ! s->peer_done && ! s->ended)
  {
    size_t used = 0;
    char *payload = NULL;
    size_t plen = 0;
    enum MHD_WEBSOCKET_STATUS st;

    st = MHD_websocket_decode (s->ws, data + offset, len - offset, &used,
                               &payload, &plen);
    WS_ASSERT (used <= len - offset);
    offset += used;
    if (is_data_status (st))
    {
      /* After our close, the peer's messages are dropped. */
      if (! s->closing && (NULL != s->cfg.message_cb))
        s->cfg.message_cb (s->cls, s, st, payload, plen);
    }
    else
      switch (st)
      {
      case MHD_WEBSOCKET_STATUS_OK:
        /* All consumed; or nothing consumed, which cannot go on. */
        if (0 == used)
          offset = len;
        break;
      case MHD_WEBSOCKET_STATUS_PING_FRAME:
        /* RFC 6455 5.5.3: the pong carries the ping's payload.  A peer
           that pings faster than it reads gets no more pongs than the
           cap; a failed allocation only loses this pong. */
        if (! s->closing && (s->pongs < s->cfg.max_pongs))
          (void) queue_control (s, WS_OUT_PONG, payload, plen);
        if (NULL != s->cfg.message_cb)
          s->cfg.message_cb (s->cls, s, st, payload, plen);
        break;
      case MHD_WEBSOCKET_STATUS_PONG_FRAME:
        /* Unsolicited pongs are legal (RFC 6455 5.5.3). */
        if (NULL != s->cfg.message_cb)
          s->cfg.message_cb (s->cls, s, st, payload, plen);
        break;
      case MHD_WEBSOCKET_STATUS_CLOSE_FRAME:
        s->peer_done = true;
        if (! s->closing)
          answer_close (s, payload, plen);
        if (NULL != s->cfg.message_cb)
          s->cfg.message_cb (s->cls, s, st, payload, plen);
        maybe_end (s);
        break;
      case MHD_WEBSOCKET_STATUS_MEMORY_ERROR:
        MHD_websocket_free (s->ws, payload);
        end_session (s, MHD_WEBSOCKET_END_ERROR, 0);
        return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
      default:
        /* Protocol, UTF-8 and size errors: the stream decodes no more.
           With GENERATE_CLOSE_FRAMES_ON_ERROR the payload is the close
           frame the decoder made; else one is built with the code. */
        s->input_dead = true;
        if (NULL != payload)
          (void) start_close (s, MHD_WEBSOCKET_END_PROTOCOL,
                              frame_code (payload, plen, error_code (st)), NULL,
                              0, payload, plen);
        else
          (void) start_close (s, MHD_WEBSOCKET_END_PROTOCOL, error_code (st),
                              NULL, 0, NULL, 0);
        break;
      }
    if (NULL != payload)
      MHD_websocket_free (s->ws, payload);
  }
  CHECK_QUEUES (s);
  return MHD_WEBSOCKET_STATUS_OK;
}

_MHD_EXTERN void
MHD_websocket_session_eof (struct MHD_WebSocketSession *s, int error,
                           unsigned long long now_ms)
{
  if (NULL == s)
    return;
  s->now = now_ms;
  if (s->ended)
    return;
  s->peer_done = true;
  if (s->closing)
    end_session (s, s->why, s->end_code);
  else
    end_session (s, error ? MHD_WEBSOCKET_END_ERROR : MHD_WEBSOCKET_END_PEER,
                 0);
}

/* ------------------------------------------------------------ output */

/** The next frame to hand out, moved to the wire queue; NULL when none. */
static struct ws_out *
next_frame (struct MHD_WebSocketSession *s)
{
  struct ws_out *o = q_pop (&s->ctrl);

  if (NULL == o)
    o = q_pop (&s->data);
  if ((NULL == o) && s->close_queued && ! s->close_sent
      && (&s->close_node != s->wire.tail))
    o = &s->close_node;
  if (NULL != o)
    q_push (&s->wire, o);
  return o;
}

_MHD_EXTERN unsigned int
MHD_websocket_session_pending (struct MHD_WebSocketSession *s,
                               struct MHD_WebSocketChunk *chunks,
                               unsigned int max)
{
  const struct ws_out *o;
  size_t off;
  unsigned int n = 0;

  if ((NULL == s) || (NULL == chunks) || s->ended)
    return 0;
  off = s->wire_off;
  for (o = s->wire.head; (NULL != o) && (n < max); o = o->next)
  {
    chunks[n].data = o->data + off;
    chunks[n].len = o->len - off;
    off = 0;
    n++;
  }
  while ((n < max) && (NULL == o) && (NULL != (o = next_frame (s))))
  {
    chunks[n].data = o->data;
    chunks[n].len = o->len;
    n++;
    o = NULL;
  }
  CHECK_QUEUES (s);
  return n;
}

_MHD_EXTERN void
MHD_websocket_session_sent (struct MHD_WebSocketSession *s, size_t len,
                            unsigned long long now_ms)
{
  struct ws_out *o;

  if (NULL == s)
    return;
  s->now = now_ms;
  if (s->ended)
    return;
  /* Only what pending() handed out can have been written. */
  while ((0 != len) && (NULL != (o = s->wire.head)))
  {
    size_t left = o->len - s->wire_off;
    size_t take = (len < left) ? len : left;

    s->pending -= take;
    if (WS_OUT_DATA == o->kind)
      s->queued -= take;
    len -= take;
    if (take < left)
    {
      s->wire_off += take;
      break;
    }
    (void) q_pop (&s->wire);
    s->wire_off = 0;
    if (WS_OUT_PONG == o->kind)
      s->pongs--;
    if (WS_OUT_PING == o->kind)
      s->pings--;
    if (WS_OUT_CLOSE == o->kind)
      s->close_sent = true;
    out_free (s, o);
  }
  WS_ASSERT (0 == len);
  if (s->paused && (s->queued <= s->soft_bound / 2))
    s->paused = false;
  CHECK_QUEUES (s);
  maybe_end (s);
}

_MHD_EXTERN int
MHD_websocket_session_want_read (const struct MHD_WebSocketSession *s)
{
  return (NULL != s) && ! s->ended && ! s->peer_done && ! s->paused;
}

_MHD_EXTERN int
MHD_websocket_session_want_write (const struct MHD_WebSocketSession *s)
{
  return (NULL != s) && ! s->ended && (0 != s->pending);
}

_MHD_EXTERN int
MHD_websocket_session_write_done (const struct MHD_WebSocketSession *s)
{
  return (NULL != s) && s->close_sent;
}

_MHD_EXTERN int
MHD_websocket_session_ended (const struct MHD_WebSocketSession *s)
{
  return (NULL != s) && s->ended;
}

_MHD_EXTERN size_t
MHD_websocket_session_queued (const struct MHD_WebSocketSession *s)
{
  return (NULL == s) ? 0 : s->queued;
}

/* ------------------------------------------------------------ time */

static unsigned long long
add_ms (unsigned long long t, unsigned long long ms)
{
  return (t > WS_NO_DEADLINE - 1 - ms) ? WS_NO_DEADLINE - 1 : t + ms;
}

/** When the next ping is due (0 interval: never). */
static unsigned long long
ping_due (const struct MHD_WebSocketSession *s)
{
  unsigned long long from =
    (s->last_heard > s->last_ping) ? s->last_heard : s->last_ping;

  if (0 == s->cfg.ping_interval_ms)
    return WS_NO_DEADLINE;
  return add_ms (from, s->cfg.ping_interval_ms);
}

static unsigned long long
idle_due (const struct MHD_WebSocketSession *s)
{
  if (0 == s->cfg.idle_timeout_ms)
    return WS_NO_DEADLINE;
  return add_ms (s->last_heard, s->cfg.idle_timeout_ms);
}

_MHD_EXTERN unsigned long long
MHD_websocket_session_next_deadline (const struct MHD_WebSocketSession *s)
{
  unsigned long long a;
  unsigned long long b;

  if ((NULL == s) || s->ended)
    return WS_NO_DEADLINE;
  if (s->closing)
    return s->close_deadline;
  a = idle_due (s);
  b = ping_due (s);
  return (a < b) ? a : b;
}

_MHD_EXTERN void
MHD_websocket_session_tick (struct MHD_WebSocketSession *s,
                            unsigned long long now_ms)
{
  if (NULL == s)
    return;
  s->now = now_ms;
  if (s->ended)
    return;
  if (s->closing)
  {
    if (now_ms >= s->close_deadline)
      end_session (s,
                   (MHD_WEBSOCKET_END_APP == s->why)
                     ? MHD_WEBSOCKET_END_CLOSE_TIMEOUT
                     : s->why,
                   s->end_code);
    return;
  }
  if (now_ms >= idle_due (s))
  {
    static const char idle[] = "idle timeout";

    (void) start_close (s, MHD_WEBSOCKET_END_IDLE,
                        MHD_WEBSOCKET_CLOSEREASON_GOING_AWAY, idle,
                        sizeof (idle) - 1, NULL, 0);
    return;
  }
  if (now_ms >= ping_due (s))
  {
    /* A failed allocation only loses this ping; the next is due one
       interval later.  While a ping still waits unwritten, the peer is
       not reading: another would only grow the queue. */
    s->last_ping = now_ms;
    if (0 == s->pings)
      (void) queue_control (s, WS_OUT_PING, NULL, 0);
  }
}

/* ------------------------------------------------------------ sends */

/** Refuses a send at the hard bound, closing when so configured. */
static enum MHD_WEBSOCKET_SEND_RESULT
refuse (struct MHD_WebSocketSession *s)
{
  static const char why[] = "too slow";

  if (s->cfg.close_on_hard_bound)
    (void) start_close (s, MHD_WEBSOCKET_END_STALLED,
                        MHD_WEBSOCKET_CLOSEREASON_POLICY_VIOLATED, why,
                        sizeof (why) - 1, NULL, 0);
  return MHD_WEBSOCKET_SEND_REFUSED;
}

/** Whether a frame of @a len bytes would take the data queue past the
    hard bound. */
static bool
over_hard_bound (const struct MHD_WebSocketSession *s, size_t len)
{
  return (len > s->hard_bound) || (s->queued > s->hard_bound - len);
}

/** Queues a data frame and reports the soft bound. */
static enum MHD_WEBSOCKET_SEND_RESULT
queue_data (struct MHD_WebSocketSession *s, struct ws_out *o)
{
  WS_ASSERT (! over_hard_bound (s, o->len));
  enqueue (s, &s->data, o);
  CHECK_QUEUES (s);
  if (s->queued > s->soft_bound)
  {
    s->paused = true;
    return MHD_WEBSOCKET_SEND_BACKPRESSURE;
  }
  return MHD_WEBSOCKET_SEND_OK;
}

/** The largest frame the compressing encoder can make of @a len bytes:
    zlib's stored blocks cost 5 bytes per 16 KiB at worst (deflateBound),
    and the flush a few more. */
static size_t
worst_deflated (size_t len)
{
  size_t body = len + (len >> 12) + 32;

  return ws_header_size (body, true) + body;
}

static enum MHD_WEBSOCKET_SEND_RESULT
send_message (struct MHD_WebSocketSession *s, bool binary, const char *data,
              size_t len)
{
  uint8_t b0 = (uint8_t) (WS_FIN | (binary ? WS_OP_BINARY : WS_OP_TEXT));
  struct ws_out *o;
  size_t frame_len;

  if ((NULL == s) || ((NULL == data) && (0 != len)))
    return MHD_WEBSOCKET_SEND_INVALID;
  if (s->closing || s->ended)
    return MHD_WEBSOCKET_SEND_CLOSED;
  if (! binary)
  {
    int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;

    if ((len != ws_utf8_check (&step, (const unsigned char *) data, len))
        || (MHD_WEBSOCKET_UTF8STEP_NORMAL != step))
      return MHD_WEBSOCKET_SEND_INVALID;
  }
  if (len > SIZE_MAX / 2)
    return MHD_WEBSOCKET_SEND_INVALID;
  if (s->deflate)
  {
    char *frame = NULL;
    enum MHD_WEBSOCKET_STATUS st;

    /* With context takeover a frame once compressed must be sent (the
       peer's window follows ours): judge it at its worst size first. */
    if (s->deflate_takeover && over_hard_bound (s, worst_deflated (len)))
      return refuse (s);
    o = s_malloc (s, sizeof (*o));
    if (NULL == o)
      return MHD_WEBSOCKET_SEND_MEMORY_ERROR;
    memset (o, 0, sizeof (*o));
    o->kind = WS_OUT_DATA;
    if (binary)
      st = MHD_websocket_encode_binary (
        s->ws, data, len, MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame, &frame_len);
    else
      st = MHD_websocket_encode_text (s->ws, data, len,
                                      MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame,
                                      &frame_len, NULL);
    if (MHD_WEBSOCKET_STATUS_OK != st)
    {
      s_free (s, o);
      return (MHD_WEBSOCKET_STATUS_MEMORY_ERROR == st)
               ? MHD_WEBSOCKET_SEND_MEMORY_ERROR
               : MHD_WEBSOCKET_SEND_INVALID;
    }
    o->owned = frame;
    o->data = frame;
    o->len = frame_len;
    if (over_hard_bound (s, frame_len))
    {
      /* Only without context takeover (checked above otherwise). */
      out_free (s, o);
      return refuse (s);
    }
    return queue_data (s, o);
  }
  frame_len = ws_header_size (len, is_client (s)) + len;
  if (over_hard_bound (s, frame_len))
    return refuse (s);
  o = node_new (s, len, WS_OUT_DATA);
  if (NULL == o)
    return MHD_WEBSOCKET_SEND_MEMORY_ERROR;
  o->len = build_frame (s, (uint8_t *) (o + 1), b0, data, len, NULL, 0);
  if (0 == o->len)
  {
    out_free (s, o);
    return MHD_WEBSOCKET_SEND_MEMORY_ERROR;
  }
  WS_ASSERT (o->len == frame_len);
  return queue_data (s, o);
}

_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_session_send_text (struct MHD_WebSocketSession *s,
                                 const char *text, size_t len)
{
  return send_message (s, false, text, len);
}

_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_session_send_binary (struct MHD_WebSocketSession *s,
                                   const char *data, size_t len)
{
  return send_message (s, true, data, len);
}

_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_session_send_ping (struct MHD_WebSocketSession *s,
                                 const char *data, size_t len)
{
  if ((NULL == s) || ((NULL == data) && (0 != len))
      || (len > WS_MAX_CONTROL_PAYLOAD))
    return MHD_WEBSOCKET_SEND_INVALID;
  if (s->closing || s->ended)
    return MHD_WEBSOCKET_SEND_CLOSED;
  if (! queue_control (s, WS_OUT_PING, data, len))
    return MHD_WEBSOCKET_SEND_MEMORY_ERROR;
  return MHD_WEBSOCKET_SEND_OK;
}

_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_session_close (struct MHD_WebSocketSession *s,
                             unsigned short code, const char *reason)
{
  size_t reason_len = (NULL == reason) ? 0 : strlen (reason);

  if (NULL == s)
    return MHD_WEBSOCKET_SEND_INVALID;
  if ((0 != code) && ((code >= 5000) || ! ws_close_code_valid_on_wire (code)))
    return MHD_WEBSOCKET_SEND_INVALID;
  if ((0 == code) && (0 != reason_len))
    return MHD_WEBSOCKET_SEND_INVALID;
  if (reason_len > WS_MAX_CONTROL_PAYLOAD - 2)
    return MHD_WEBSOCKET_SEND_INVALID;
  if (0 != reason_len)
  {
    int step = MHD_WEBSOCKET_UTF8STEP_NORMAL;

    if ((reason_len
         != ws_utf8_check (&step, (const unsigned char *) reason, reason_len))
        || (MHD_WEBSOCKET_UTF8STEP_NORMAL != step))
      return MHD_WEBSOCKET_SEND_INVALID;
  }
  if (! start_close (s, MHD_WEBSOCKET_END_APP, code, reason, reason_len, NULL,
                     0))
    return MHD_WEBSOCKET_SEND_CLOSED;
  return MHD_WEBSOCKET_SEND_OK;
}

_MHD_EXTERN enum MHD_WEBSOCKET_SEND_RESULT
MHD_websocket_session_send_broadcast (struct MHD_WebSocketSession *s,
                                      struct MHD_WebSocketBroadcast *bc)
{
  return ws_session_send_shared (s, bc, NULL);
}

enum MHD_WEBSOCKET_SEND_RESULT
ws_session_send_shared (struct MHD_WebSocketSession *s,
                        struct MHD_WebSocketBroadcast *bc,
                        struct ws_bc_share *share)
{
  const char *frame;
  size_t frame_len;
  size_t payload_len;
  struct ws_out *o;

  if ((NULL == s) || (NULL == bc))
    return MHD_WEBSOCKET_SEND_INVALID;
  if (s->closing || s->ended)
    return MHD_WEBSOCKET_SEND_CLOSED;
  payload_len = bc->plain_len - bc->payload_off;
  /* A client masks every frame with a key of its own: no frame can be
     shared.  Streams whose compressor keeps context cannot take a
     standalone frame either, but the plain one is always right. */
  if (is_client (s))
    return send_message (s, bc->binary, bc->plain + bc->payload_off,
                         payload_len);
  ws_bc_frame (bc,
               s->shares_packed && (bc->bits <= s->tx_bits)
                 && (payload_len >= s->tx_min_size),
               &frame, &frame_len);
  if (over_hard_bound (s, frame_len))
    return refuse (s);
  o = s_malloc (s, sizeof (*o));
  if (NULL == o)
    return MHD_WEBSOCKET_SEND_MEMORY_ERROR;
  memset (o, 0, sizeof (*o));
  o->kind = WS_OUT_DATA;
  o->data = frame;
  o->len = frame_len;
  if (NULL != share)
  {
    WS_ASSERT (share->bc == bc);
    ws_bc_share_ref (share);
    o->share = share;
  }
  else
  {
    ws_bc_ref (bc);
    o->bc = bc;
  }
  return queue_data (s, o);
}
