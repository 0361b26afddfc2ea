/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file fuzz_session.c
 * @brief libFuzzer harness for the session layer: random input bytes and
 *        client frames, random sends, random partial writes and clock
 *        ticks, failing allocations.
 *
 * Input layout:
 *   [0] setup: bit0-1 deflate (0 none, 1 takeover, 2 no context
 *       takeover, 3 no context takeover with 9-bit windows); bit2
 *       WANT_FRAGMENTS; bit3 GENERATE_CLOSE_FRAMES_ON_ERROR; bit4
 *       CLOSE_ON_HARD_BOUND; bit5 ECHO_CLOSE_REASON; bit6-7 max pongs - 1
 *   [1] soft bound / 16 (hard bound: soft bound * (2 + [2] % 4))
 *   [2] see [1]; bit2-3 also pick the timers (ping, idle, close); bit4
 *       makes the session a client's (the peer a server); bit5 makes the
 *       bounds 256 times larger
 *   [3..6] allocation failure mask (bit n: the n-th allocation fails)
 *   then operations: op byte, argument byte, then what the op takes
 *     op % 10: 0 raw bytes (argument: how many) fed as received;
 *       1 a peer's frame (encoded by a stream of the peer's role):
 *         argument % 6 is text, binary, ping, pong, close, or a text
 *         fragment; the next
 *         byte its length; 2 send text, 3 send binary (argument bytes,
 *         times 64 with op & 0x80, 64 KiB more with op & 0x40); 4 ping;
 *       5 close with a code; 6 write up to argument bytes of the pending
 *       output; 7 clock + argument * 37 ms and tick; 8 a broadcast;
 *       9 end of the peer's stream (argument & 1: an error)
 *
 * Invariants: every byte written decodes as valid frames for the peer
 * (with the agreed compression); nothing follows the close frame, which
 * goes out at most once; queued data never passes the hard bound;
 * want_write is 1 exactly when pending has bytes; the end event comes
 * exactly once; nothing leaks.
 */
#include "fuzz_common.h"

static const char *const answers[4] = {
  NULL, "permessage-deflate", "permessage-deflate; server_no_context_takeover",
  "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; "
  "client_max_window_bits=9"
};

struct fz_state
{
  struct MHD_WebSocketSession *s;
  /* Decodes what the session wrote, as its peer would. */
  struct MHD_WebSocketStream *peer;
  /* Encodes the peer's frames. */
  struct MHD_WebSocketStream *client;
  int ends;
  int closes_seen;
  int after_close;
  size_t hard;
  unsigned long long now;
  int client_frag_open;
};

static void
on_message (void *cls, struct MHD_WebSocketSession *s,
            enum MHD_WEBSOCKET_STATUS type, const char *data, size_t len)
{
  struct fz_state *st = cls;

  FZ_CHECK (st->s == s);
  FZ_CHECK ((NULL != data) || (0 == len));
  /* Echo some of it, as servers do. */
  if ((MHD_WEBSOCKET_STATUS_TEXT_FRAME == type) && (len & 1))
    (void) MHD_websocket_session_send_text (s, data, len);
  if ((MHD_WEBSOCKET_STATUS_BINARY_FRAME == type) && (len & 1))
    (void) MHD_websocket_session_send_binary (s, data, len);
}

static void
on_end (void *cls, struct MHD_WebSocketSession *s,
        enum MHD_WEBSOCKET_END_REASON reason, unsigned short code)
{
  struct fz_state *st = cls;

  (void) code;
  FZ_CHECK (st->s == s);
  FZ_CHECK (reason <= MHD_WEBSOCKET_END_CLOSE_TIMEOUT);
  FZ_CHECK (0 == MHD_websocket_session_want_read (s));
  FZ_CHECK (0 == MHD_websocket_session_want_write (s));
  st->ends++;
}

/** Feeds written bytes to the peer's decoder: they must be valid. */
static void
peer_take (struct fz_state *st, const char *data, size_t len)
{
  size_t off = 0;

  while (off < len)
  {
    size_t used = 0;
    char *p = NULL;
    size_t plen = 0;
    int r;

    /* The decoder may run out of memory only when a failure is armed;
       then the rest of the check is skipped. */
    r =
      MHD_websocket_decode (st->peer, data + off, len - off, &used, &p, &plen);
    if (MHD_WEBSOCKET_STATUS_MEMORY_ERROR == r)
    {
      FZ_CHECK (fz_failed);
      MHD_websocket_stream_free (st->peer);
      st->peer = NULL;
      return;
    }
    FZ_CHECK (r >= 0);
    off += used;
    if (NULL != p)
      MHD_websocket_free (st->peer, p);
    if (MHD_WEBSOCKET_STATUS_OK == r)
      break;
    /* Nothing may follow our close frame. */
    FZ_CHECK (0 == st->closes_seen);
    if (MHD_WEBSOCKET_STATUS_CLOSE_FRAME == r)
      st->closes_seen++;
  }
  FZ_CHECK (off == len);
}

/** pending() and want_write() agree, and the bound holds. */
static void
check_state (struct fz_state *st)
{
  struct MHD_WebSocketChunk ch[1];
  unsigned int n;

  FZ_CHECK (MHD_websocket_session_queued (st->s) <= st->hard);
  n = MHD_websocket_session_pending (st->s, ch, 1);
  FZ_CHECK ((n > 0) == (0 != MHD_websocket_session_want_write (st->s)));
  FZ_CHECK ((0 == n) || (ch[0].len > 0));
  FZ_CHECK (st->ends <= 1);
  FZ_CHECK (st->ends == MHD_websocket_session_ended (st->s));
}

/** Writes up to @a room bytes of the pending output. */
static void
write_some (struct fz_state *st, size_t room)
{
  struct MHD_WebSocketChunk ch[8];
  unsigned int n = MHD_websocket_session_pending (st->s, ch, 8);
  size_t w = 0;
  unsigned int i;

  for (i = 0; (i < n) && (w < room); i++)
  {
    size_t take = ch[i].len;

    if (take > room - w)
      take = room - w;
    if (NULL != st->peer)
      peer_take (st, ch[i].data, take);
    w += take;
  }
  MHD_websocket_session_sent (st->s, w, st->now);
}

static uint8_t
next (const uint8_t **p, const uint8_t *end)
{
  return (*p < end) ? *(*p)++ : 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const uint8_t *p = data;
  const uint8_t *end = data + size;
  struct fz_state st;
  struct MHD_WebSocketSessionConfig *cfg;
  struct MHD_WebSocketStream *ws;
  struct MHD_WebSocketBroadcast *bc = NULL;
  uint8_t setup;
  uint8_t b1;
  uint8_t b2;
  uint32_t mask;
  size_t soft;
  const char *answer;
  int flags;
  int client;
  int peer_role;
  unsigned ops = 0;
  static char fill[140000];

  if (size < 7)
    return 0;
  if ('a' != fill[0])
    memset (fill, 'a', sizeof (fill));
  memset (&st, 0, sizeof (st));
  setup = next (&p, end);
  b1 = next (&p, end);
  b2 = next (&p, end);
  mask = (uint32_t) next (&p, end);
  mask |= (uint32_t) next (&p, end) << 8;
  mask |= (uint32_t) next (&p, end) << 16;
  mask |= (uint32_t) next (&p, end) << 24;
  fz_seed (mask ^ 0x5eed);
  fz_alloc_reset (0);

  answer = answers[setup & 3];
  client = 0 != (b2 & 0x10);
  flags = client ? MHD_WEBSOCKET_FLAG_CLIENT : MHD_WEBSOCKET_FLAG_SERVER;
  if (setup & 4)
    flags |= MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS;
  if (setup & 8)
    flags |= MHD_WEBSOCKET_FLAG_GENERATE_CLOSE_FRAMES_ON_ERROR;
  soft = (size_t) b1 * ((b2 & 0x20) ? 4096 : 16);
  st.hard = soft * (2 + (b2 % 4));
  cfg = MHD_websocket_session_config_create ();
  FZ_CHECK (NULL != cfg);
  MHD_websocket_session_config_set_callbacks (cfg, on_message, on_end);
  FZ_CHECK (0
            == MHD_websocket_session_config_set (
              cfg, MHD_WEBSOCKET_SESSION_OPTION_SOFT_BOUND, soft));
  FZ_CHECK (0
            == MHD_websocket_session_config_set (
              cfg, MHD_WEBSOCKET_SESSION_OPTION_HARD_BOUND, st.hard));
  FZ_CHECK (
    0
    == MHD_websocket_session_config_set (
      cfg, MHD_WEBSOCKET_SESSION_OPTION_CLOSE_ON_HARD_BOUND, (setup >> 4) & 1));
  FZ_CHECK (
    0
    == MHD_websocket_session_config_set (
      cfg, MHD_WEBSOCKET_SESSION_OPTION_ECHO_CLOSE_REASON, (setup >> 5) & 1));
  FZ_CHECK (
    0
    == MHD_websocket_session_config_set (
      cfg, MHD_WEBSOCKET_SESSION_OPTION_MAX_PONGS_QUEUED, 1 + (setup >> 6)));
  if (b2 & 4)
  {
    FZ_CHECK (0
              == MHD_websocket_session_config_set (
                cfg, MHD_WEBSOCKET_SESSION_OPTION_PING_INTERVAL_MS, 1000));
    FZ_CHECK (0
              == MHD_websocket_session_config_set (
                cfg, MHD_WEBSOCKET_SESSION_OPTION_IDLE_TIMEOUT_MS, 3000));
  }
  if (b2 & 8)
    FZ_CHECK (0
              == MHD_websocket_session_config_set (
                cfg, MHD_WEBSOCKET_SESSION_OPTION_CLOSE_TIMEOUT_MS, 500));

  /* The peer's two streams never fail: only the session's allocations
     are armed (the session's stream and the broadcast's allocator). */
  peer_role = client ? MHD_WEBSOCKET_FLAG_SERVER : MHD_WEBSOCKET_FLAG_CLIENT;
  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK
            == MHD_websocket_stream_init2 (&st.peer, peer_role, 0, malloc,
                                           realloc, free, NULL, fz_rng_cb));
  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK
            == MHD_websocket_stream_init2 (&st.client, peer_role, 0, malloc,
                                           realloc, free, NULL, fz_rng_cb));
  if (NULL != answer)
  {
    FZ_CHECK (
      MHD_WEBSOCKET_STATUS_OK
      == MHD_websocket_stream_enable_deflate (st.peer, answer, -1, 0, 0));
    FZ_CHECK (
      MHD_WEBSOCKET_STATUS_OK
      == MHD_websocket_stream_enable_deflate (st.client, answer, -1, 0, 0));
  }
  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK
            == MHD_websocket_stream_init2 (&ws, flags, 0, fz_malloc, fz_realloc,
                                           fz_free, NULL, fz_rng_cb));
  if (NULL != answer)
    FZ_CHECK (MHD_WEBSOCKET_STATUS_OK
              == MHD_websocket_stream_enable_deflate (ws, answer, -1, 0, 0));
  fz_alloc_reset (mask);
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_session_create (&st.s, ws, cfg, &st, st.now))
  {
    FZ_CHECK (fz_failed);
    goto done;
  }

  while ((p < end) && (ops++ < 512))
  {
    uint8_t op = next (&p, end);
    uint8_t arg = next (&p, end);

    switch (op % 10)
    {
    case 0:
    {
      size_t n = arg;

      if (n > (size_t) (end - p))
        n = (size_t) (end - p);
      (void) MHD_websocket_session_receive (st.s, (const char *) p, n, st.now);
      p += n;
      break;
    }
    case 1:
    {
      size_t len = next (&p, end);
      char *frame = NULL;
      size_t frame_len = 0;
      int r;

      if (op & 0x80)
        len += 600;
      switch (arg % 6)
      {
      case 0:
        r = MHD_websocket_encode_text (st.client, fill, len,
                                       MHD_WEBSOCKET_FRAGMENTATION_NONE, &frame,
                                       &frame_len, NULL);
        break;
      case 1:
        r = MHD_websocket_encode_binary (st.client, fill, len,
                                         MHD_WEBSOCKET_FRAGMENTATION_NONE,
                                         &frame, &frame_len);
        break;
      case 2:
        r = MHD_websocket_encode_ping (st.client, fill, len % 126, &frame,
                                       &frame_len);
        break;
      case 3:
        r = MHD_websocket_encode_pong (st.client, fill, len % 126, &frame,
                                       &frame_len);
        break;
      case 4:
        r = MHD_websocket_encode_close (
          st.client, (len & 1) ? 1000 + (len % 14) : 0, fill,
          (len & 1) ? len % 100 : 0, &frame, &frame_len);
        break;
      default:
        r = MHD_websocket_encode_text (
          st.client, fill, len,
          st.client_frag_open
            ? ((arg & 0x40) ? MHD_WEBSOCKET_FRAGMENTATION_LAST
                            : MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING)
            : MHD_WEBSOCKET_FRAGMENTATION_FIRST,
          &frame, &frame_len, NULL);
        if (MHD_WEBSOCKET_STATUS_OK == r)
          st.client_frag_open = ! (st.client_frag_open && (arg & 0x40));
        break;
      }
      if (MHD_WEBSOCKET_STATUS_OK == r)
      {
        size_t cut = (arg >> 3) % (frame_len + 1);

        /* In two pieces, to cross frame boundaries. */
        (void) MHD_websocket_session_receive (st.s, frame, cut, st.now);
        (void) MHD_websocket_session_receive (st.s, frame + cut,
                                              frame_len - cut, st.now);
        MHD_websocket_free (st.client, frame);
      }
      break;
    }
    case 2:
    case 3:
    {
      size_t len =
        (size_t) arg * ((op & 0x80) ? 64 : 1) + ((op & 0x40) ? 65536 : 0);
      enum MHD_WEBSOCKET_SEND_RESULT r;
      size_t before = MHD_websocket_session_queued (st.s);

      r = (2 == op % 10) ? MHD_websocket_session_send_text (st.s, fill, len)
                         : MHD_websocket_session_send_binary (st.s, fill, len);
      FZ_CHECK (r <= MHD_WEBSOCKET_SEND_MEMORY_ERROR);
      if ((MHD_WEBSOCKET_SEND_OK == r)
          || (MHD_WEBSOCKET_SEND_BACKPRESSURE == r))
        FZ_CHECK (MHD_websocket_session_queued (st.s) > before);
      if (MHD_WEBSOCKET_SEND_BACKPRESSURE == r)
        FZ_CHECK (MHD_websocket_session_queued (st.s) > soft);
      if (MHD_WEBSOCKET_SEND_OK == r)
        FZ_CHECK (MHD_websocket_session_queued (st.s) <= soft);
      break;
    }
    case 4:
      (void) MHD_websocket_session_send_ping (st.s, fill, arg % 130);
      break;
    case 5:
      (void) MHD_websocket_session_close (st.s, (arg & 1) ? 0 : 1000 + arg % 12,
                                          (arg & 2) ? "bye" : NULL);
      break;
    case 6:
      write_some (&st, (size_t) arg * ((op & 0x80) ? 97 : 1));
      break;
    case 7:
    {
      unsigned long long d = MHD_websocket_session_next_deadline (st.s);

      st.now += (unsigned long long) arg * 37;
      MHD_websocket_session_tick (st.s, st.now);
      /* Nothing is due any more at the time just ticked. */
      FZ_CHECK ((d > st.now) || MHD_websocket_session_ended (st.s)
                || (MHD_websocket_session_next_deadline (st.s) > st.now));
      break;
    }
    case 8:
      if (NULL == bc)
        (void) MHD_websocket_broadcast_create (
          &bc, arg & 1, fill, (size_t) arg * 8, fz_malloc, fz_free);
      if (NULL != bc)
        (void) MHD_websocket_session_send_broadcast (st.s, bc);
      break;
    default:
      MHD_websocket_session_eof (st.s, arg & 1, st.now);
      break;
    }
    check_state (&st);
  }
  /* Write everything; a session that closed has sent one close. */
  while (MHD_websocket_session_want_write (st.s))
    write_some (&st, (size_t) -1);
  check_state (&st);
  if (MHD_websocket_session_write_done (st.s) && (NULL != st.peer))
    FZ_CHECK (1 == st.closes_seen);
  MHD_websocket_session_free (st.s);
  FZ_CHECK (1 == st.ends);
done:
  MHD_websocket_broadcast_release (bc);
  if (NULL != st.peer)
    MHD_websocket_stream_free (st.peer);
  MHD_websocket_stream_free (st.client);
  MHD_websocket_session_config_free (cfg);
  FZ_CHECK (0 == fz_live);
  return 0;
}
