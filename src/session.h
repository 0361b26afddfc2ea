/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file session.h
 * @brief The private session structures (session.c).
 */
#ifndef WS_SESSION_H
#define WS_SESSION_H 1

#include "broadcast.h"

/** What a queued frame is; the kind decides its queue and its counters. */
enum ws_out_kind
{
  WS_OUT_DATA = 0,
  WS_OUT_PONG = 1,
  WS_OUT_PING = 2,
  WS_OUT_CLOSE = 3
};

/**
 * One queued frame.  Its bytes live after the node (frames the session
 * built), in a buffer of the stream's allocator (@e owned, frames the
 * compressing encoder built), or in a broadcast (one reference: of the
 * broadcast itself in @e bc, or of a loop's share of it in @e share).
 */
struct ws_out
{
  struct ws_out *next;
  const char *data;
  size_t len;
  char *owned;
  struct MHD_WebSocketBroadcast *bc;
  struct ws_bc_share *share;
  enum ws_out_kind kind;
};

/** A singly linked queue with a tail. */
struct ws_outq
{
  struct ws_out *head;
  struct ws_out *tail;
};

struct MHD_WebSocketSessionConfig
{
  MHD_WebSocketMessageCallback message_cb;
  MHD_WebSocketEndCallback end_cb;
  size_t soft_bound;
  size_t hard_bound;
  bool close_on_hard_bound;
  bool echo_close_reason;
  unsigned long long idle_timeout_ms;
  unsigned long long ping_interval_ms;
  unsigned long long close_timeout_ms;
  unsigned int max_pongs;
  unsigned short empty_close_code;
};

/** A close frame has at most a 14-byte header and a 125-byte payload. */
#define WS_CLOSE_FRAME_MAX (WS_MAX_HEADER_SIZE + WS_MAX_CONTROL_PAYLOAD + 1)

/*
 * The fields come in the order of their use: those that queueing and
 * writing a message touch first, in the first three cache lines, then
 * the rest.  A broadcast visits every member's session once to queue
 * and once to write, and with thousands of members none of them is
 * still in the cache: every further line the two paths touch was a
 * miss per delivery (the stream's allocator and client flag among
 * them, which is why the session keeps copies of them here).
 */
struct MHD_WebSocketSession
{
  struct MHD_WebSocketStream *ws;
  /** The stream's allocator (fixed once the stream is made). */
  MHD_WebSocketMallocCallback malloc_cb;
  MHD_WebSocketFreeCallback free_cb;

  /*
   * Output, in the order it goes out:
   * - wire: frames pending() handed out; their order is fixed, so that
   *   a caller still writing them (uv_write) never sees them reordered;
   * - ctrl: pongs and pings, ahead of data, never inside a frame;
   * - data: messages;
   * - the close frame (close_node), last.
   */
  struct ws_outq wire;
  struct ws_outq ctrl;
  struct ws_outq data;
  /** Bytes of wire.head already retired. */
  size_t wire_off;
  /** All bytes not yet retired, in every queue (want_write). */
  size_t pending;
  /** Data bytes not yet retired (the bounds count these). */
  size_t queued;
  /** Copies of cfg's bounds, beside the counts they bound. */
  size_t soft_bound;
  size_t hard_bound;
  /** Pongs queued and not yet retired (MAX_PONGS_QUEUED). */
  unsigned int pongs;
  /** Pings queued and not yet retired: no keepalive ping is added
      while one waits, so a peer that reads nothing cannot grow them. */
  unsigned int pings;

  /** Called whenever output is queued, so that a loop that runs the
      session learns there is something to write whoever queued it;
      NULL for none (a caller that drives the session itself asks
      MHD_websocket_session_want_write()). */
  void (*wake) (void *arg);
  void *wake_arg;

  /* What the broadcast's compressed frame needs of this session. */
  size_t tx_min_size;
  int tx_bits;
  bool shares_packed;
  /** The stream is a client's (it masks what it sends). */
  bool client;

  /** Sends whose size is only known after compression are checked
      against the hard bound at their worst case first (the compressor
      keeps context between messages, so a frame once made must go). */
  bool deflate_takeover;
  bool deflate;

  /** Reading stopped above the soft bound, until half of it. */
  bool paused;
  /** Our close is queued: no more messages, pings or pongs. */
  bool closing;
  /** The close frame is in the queues (or on the wire). */
  bool close_queued;
  /** Our close frame went out whole. */
  bool close_sent;
  /** The peer's close arrived, or its byte stream ended. */
  bool peer_done;
  /** The decoder failed: later input is dropped. */
  bool input_dead;
  bool ended;

  /** Milliseconds on the caller's clock. */
  unsigned long long now;
  unsigned long long last_heard;
  unsigned long long last_ping;
  unsigned long long close_deadline;

  /** The caller's configuration (its bounds are read from the copies
      above, the hard bound raised to the soft one). */
  struct MHD_WebSocketSessionConfig cfg;
  void *cls;

  enum MHD_WEBSOCKET_END_REASON why;
  /** The code the end event reports. */
  unsigned short end_code;

  /** The close frame, built in place so that closing never allocates. */
  struct ws_out close_node;
  char close_buf[WS_CLOSE_FRAME_MAX];
};

/**
 * Starts closing with an end reason of the caller's choice (the loop
 * layer's #MHD_WEBSOCKET_END_SHUTDOWN); otherwise as
 * MHD_websocket_session_close(), which it does not validate: @a code is
 * 0 or may be sent, @a reason is UTF-8 (cut at 123 bytes).
 */
/**
 * Asks for the lines of @a s that queueing, writing and the deadline
 * touch (up to the config's timeouts), for a caller that walks many
 * sessions and can ask for the next one's while it works on this one.
 */
static inline void
ws_session_prefetch (const struct MHD_WebSocketSession *s)
{
  const char *p = (const char *) s;
  size_t off;

  for (off = 0; off < offsetof (struct MHD_WebSocketSession, cls); off += 64)
    WS_PREFETCH (p + off);
  WS_PREFETCH (p + offsetof (struct MHD_WebSocketSession, cls));
}

/**
 * MHD_websocket_session_send_broadcast() for a session that only the
 * thread of @a share runs (a loop's): the frame holds a reference of
 * the share instead of the broadcast's own.  @a share NULL is
 * MHD_websocket_session_send_broadcast().
 */
enum MHD_WEBSOCKET_SEND_RESULT
ws_session_send_shared (struct MHD_WebSocketSession *s,
                        struct MHD_WebSocketBroadcast *bc,
                        struct ws_bc_share *share);

void ws_session_start_close (struct MHD_WebSocketSession *s,
                             enum MHD_WEBSOCKET_END_REASON why,
                             unsigned short code, const char *reason,
                             size_t reason_len);

#endif
