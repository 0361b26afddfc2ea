/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file bench.c
 * @brief Throughput benchmark of the codec (not a test).
 *
 * Every workload is checked byte-exactly before it is timed, so a fast
 * wrong answer aborts instead of printing a good number.  Times are the
 * best of several rounds on one pinned CPU; throughput is compared with
 * memcpy of the same size, whose rounds alternate with the workload's.
 * When configure found libwslay, the same workloads run through wslay's
 * frame layer too (wslay_frame_recv/send, each payload assembled in a
 * fresh buffer as ours is, text checked by a byte-wise UTF-8 DFA since
 * wslay's frame layer checks none).
 *
 * `-w NAME -n N` runs one workload N times without timing, for
 * `valgrind --tool=callgrind --toggle-collect=bench_iteration`
 * (see callgrind.sh); `-l` lists the workloads with their units.
 */
#define _GNU_SOURCE 1

#include <microhttpd_ws.h>

#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB ((size_t) 1 << 20)
#define CHUNK 4096
#define SMALL_FRAMES 65536
#define SMALL_PAYLOAD 16
#define ONE_BYTE_PAYLOAD ((size_t) 64 * 1024)
#define MIN_ROUND_NS 50000000.0

/** What one iteration of a workload processes. */
enum unit
{
  UNIT_BYTES,
  UNIT_FRAMES,
  UNIT_CALLS
};

struct workload;
typedef void (*iter_fn) (struct workload *w);

struct workload
{
  const char *name;
  const char *desc;
  iter_fn run;
  enum unit unit;
  /** Units (bytes, frames or calls) per iteration. */
  size_t units;
  /** Payload bytes per iteration (for MB/s, ns/byte, memcpy ratio). */
  size_t bytes;
  /** Input buffer (payload or wire bytes) and its length. */
  unsigned char *in;
  size_t in_len;
  /** Scratch output for the reference loops. */
  unsigned char *out;
  struct MHD_WebSocketStream *ws;
  /** Count of frames completed by the last iteration (checked). */
  size_t done;
};

static const uint8_t mask_key[4] = { 0x37, 0xfa, 0x21, 0x3d };

static void
die (const char *what, const char *why)
{
  fprintf (stderr, "bench: %s: %s\n", what, why);
  exit (EXIT_FAILURE);
}

/* ---- deterministic inputs ------------------------------------------- */

static uint64_t
xorshift (uint64_t *s)
{
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  return x;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
#ifdef WS_BENCH_WSLAY
/* wslay's masks come from the same sequence as ours. */
static uint64_t rng_state_wl = 0x9E3779B97F4A7C15u;
#endif

/** The client's mask source: fast and reproducible, not secure (a
    benchmark must not measure the kernel's random source). */
static size_t
bench_rng (void *cls, void *buf, size_t len)
{
  uint64_t *s = cls;
  unsigned char *b = buf;
  size_t i;

  for (i = 0; i < len; i++)
    b[i] = (unsigned char) (xorshift (s) >> 24);
  return len;
}

static void *
xmalloc (size_t n)
{
  void *p = malloc (n);
  if (NULL == p)
    die ("malloc", "out of memory");
  return p;
}

static void
fill_binary (unsigned char *p, size_t len, uint64_t seed)
{
  size_t i;
  for (i = 0; i < len; i++)
    p[i] = (unsigned char) (xorshift (&seed) >> 32);
}

static void
fill_ascii (unsigned char *p, size_t len, uint64_t seed)
{
  size_t i;
  for (i = 0; i < len; i++)
    p[i] = (unsigned char) (0x20 + (xorshift (&seed) >> 40) % 95);
}

/** Writes code point @a cp as UTF-8 at @a p; returns its length. */
static size_t
put_utf8 (unsigned char *p, uint32_t cp)
{
  if (cp < 0x80)
  {
    p[0] = (unsigned char) cp;
    return 1;
  }
  if (cp < 0x800)
  {
    p[0] = (unsigned char) (0xC0 | (cp >> 6));
    p[1] = (unsigned char) (0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000)
  {
    p[0] = (unsigned char) (0xE0 | (cp >> 12));
    p[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
    p[2] = (unsigned char) (0x80 | (cp & 0x3F));
    return 3;
  }
  p[0] = (unsigned char) (0xF0 | (cp >> 18));
  p[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
  p[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
  p[3] = (unsigned char) (0x80 | (cp & 0x3F));
  return 4;
}

/** Valid UTF-8, by character: 30% 2-byte, 30% 3-byte, 10% 4-byte, the
    rest ASCII; padded with ASCII to exactly @a len bytes. */
static void
fill_mixed_utf8 (unsigned char *p, size_t len, uint64_t seed)
{
  size_t pos = 0;

  while (pos < len)
  {
    unsigned r = (unsigned) ((xorshift (&seed) >> 32) % 100);
    uint32_t v = (uint32_t) (xorshift (&seed) >> 20);
    uint32_t cp;

    if (r < 30)
      cp = 0x80 + v % (0x800 - 0x80);
    else if (r < 60)
    {
      /* U+0800..U+FFFF without the surrogates. */
      cp = 0x800 + v % (0x10000 - 0x800 - 0x800);
      if (cp >= 0xD800)
        cp += 0x800;
    }
    else if (r < 70)
      cp = 0x10000 + v % (0x110000 - 0x10000);
    else
      cp = 0x20 + v % 95;
    if (len - pos < 4 && cp >= 0x80)
      cp = 'x'; /* keep the tail exact without splitting a character */
    pos += put_utf8 (p + pos, cp);
  }
}

/** Builds one frame (FIN set) at @a out; masked with mask_key when
    @a masked.  Returns the frame's length. */
static size_t
build_frame (unsigned char *out, unsigned opcode, const unsigned char *pl,
             size_t len, int masked)
{
  size_t h = 0;
  size_t i;

  out[h++] = (unsigned char) (0x80 | opcode);
  if (len < 126)
    out[h++] = (unsigned char) ((masked ? 0x80 : 0) | len);
  else if (len < 65536)
  {
    out[h++] = (unsigned char) ((masked ? 0x80 : 0) | 126);
    out[h++] = (unsigned char) (len >> 8);
    out[h++] = (unsigned char) len;
  }
  else
  {
    out[h++] = (unsigned char) ((masked ? 0x80 : 0) | 127);
    for (i = 0; i < 8; i++)
      out[h++] = (unsigned char) ((uint64_t) len >> (56 - 8 * i));
  }
  if (masked)
  {
    memcpy (out + h, mask_key, 4);
    h += 4;
    for (i = 0; i < len; i++)
      out[h + i] = (unsigned char) (pl[i] ^ mask_key[i & 3]);
  }
  else
    memcpy (out + h, pl, len);
  return h + len;
}

static size_t
frame_size (size_t len, int masked)
{
  return len + 2 + (len >= 126 ? 2 : 0) + (len >= 65536 ? 6 : 0)
         + (masked ? 4 : 0);
}

/* ---- workloads ------------------------------------------------------ */

/* The references copy or mask into a buffer the compiler cannot see
   through: the volatile read keeps the work from being optimised out. */
static volatile unsigned char sink;

static void
w_memcpy (struct workload *w)
{
  memcpy (w->out, w->in, w->in_len);
  sink = w->out[w->in_len / 2];
}

static void
w_xor (struct workload *w)
{
  size_t i;
  const unsigned char *s = w->in;
  unsigned char *d = w->out;

  for (i = 0; i < w->in_len; i++)
    d[i] = (unsigned char) (s[i] ^ mask_key[i & 3]);
  sink = d[w->in_len / 2];
}

/** Feeds @a len bytes in pieces of @a chunk (re-feeding what a call left
    unconsumed); counts the frames and frees each payload.  The last
    payload is kept in @a last (when non-NULL) for checking. */
static void
feed (struct workload *w, size_t chunk, char **last, size_t *last_len)
{
  size_t c = 0;
  const char *buf = (const char *) w->in;
  size_t len = w->in_len;

  w->done = 0;
  while (c < len)
  {
    size_t end = (len - c > chunk) ? c + chunk : len;
    size_t p = c;

    while (p < end)
    {
      size_t rd;
      char *pl;
      size_t pll;
      int st;

      st = MHD_websocket_decode (w->ws, buf + p, end - p, &rd, &pl, &pll);
      if (st < 0)
        die (w->name, "decode failed");
      if (0 == rd && 0 == st)
        die (w->name, "decode made no progress");
      p += rd;
      if (st > 0)
      {
        w->done++;
        if (NULL != last && p == len)
        {
          *last = pl;
          *last_len = pll;
        }
        else
          MHD_websocket_free (w->ws, pl);
      }
    }
    c = end;
  }
}

static void
w_decode_chunks (struct workload *w)
{
  feed (w, CHUNK, NULL, NULL);
}

static void
w_decode_whole (struct workload *w)
{
  feed (w, w->in_len, NULL, NULL);
}

static void
w_decode_bytewise (struct workload *w)
{
  feed (w, 1, NULL, NULL);
}

/** Keeps the encoder's frame alive for the check in verify(). */
static char *enc_frame;
static size_t enc_frame_len;

static void
w_encode_binary (struct workload *w)
{
  char *f;
  size_t fl;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_encode_binary (w->ws, (const char *) w->in, w->in_len,
                                      MHD_WEBSOCKET_FRAGMENTATION_NONE, &f,
                                      &fl))
    die (w->name, "encode failed");
  if (NULL != enc_frame)
    MHD_websocket_free (w->ws, enc_frame);
  enc_frame = f;
  enc_frame_len = fl;
}

static void
w_encode_text (struct workload *w)
{
  char *f;
  size_t fl;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_encode_text (w->ws, (const char *) w->in, w->in_len,
                                    MHD_WEBSOCKET_FRAGMENTATION_NONE, &f, &fl,
                                    NULL))
    die (w->name, "encode failed");
  if (NULL != enc_frame)
    MHD_websocket_free (w->ws, enc_frame);
  enc_frame = f;
  enc_frame_len = fl;
}

static const char accept_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static char accept_out[32];

static void
w_accept (struct workload *w)
{
  (void) w;
  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_create_accept_header (accept_key, accept_out))
    die ("accept", "create_accept_header failed");
}

/* ---- wslay's frame layer, for comparison ------------------------------ */

#ifdef WS_BENCH_WSLAY
#include <wslay/wslay.h>

/* wslay's frame layer checks no UTF-8; the comparison adds the usual
   byte-at-a-time DFA (RFC 3629 ranges), state kept across chunks. */
enum
{
  U_OK = 0,
  U_BAD = 1,
  U_T1 = 2, /* one continuation byte missing */
  U_T2 = 3,
  U_T3 = 4,
  U_E0 = 5, /* after E0: A0..BF */
  U_ED = 6, /* after ED: 80..9F */
  U_F0 = 7, /* after F0: 90..BF */
  U_F4 = 8, /* after F4: 80..8F */
  U_NSTATES = 9
};
static uint8_t u_next[U_NSTATES][256];

static void
u_init (void)
{
  int st;
  int b;

  for (st = 0; st < U_NSTATES; st++)
    for (b = 0; b < 256; b++)
    {
      int cont = (b & 0xC0) == 0x80;
      int n = U_BAD;
      switch (st)
      {
      case U_OK:
        if (b < 0x80)
          n = U_OK;
        else if (b >= 0xC2 && b <= 0xDF)
          n = U_T1;
        else if (0xE0 == b)
          n = U_E0;
        else if (0xED == b)
          n = U_ED;
        else if (b >= 0xE1 && b <= 0xEF)
          n = U_T2;
        else if (0xF0 == b)
          n = U_F0;
        else if (b >= 0xF1 && b <= 0xF3)
          n = U_T3;
        else if (0xF4 == b)
          n = U_F4;
        break;
      case U_T1:
      case U_T2:
      case U_T3:
        if (cont)
          n = st - 1 == U_BAD ? U_OK : st - 1;
        break;
      case U_E0:
        n = (b >= 0xA0 && b <= 0xBF) ? U_T1 : U_BAD;
        break;
      case U_ED:
        n = (b >= 0x80 && b <= 0x9F) ? U_T1 : U_BAD;
        break;
      case U_F0:
        n = (b >= 0x90 && b <= 0xBF) ? U_T2 : U_BAD;
        break;
      case U_F4:
        n = (b >= 0x80 && b <= 0x8F) ? U_T2 : U_BAD;
        break;
      default:
        break;
      }
      u_next[st][b] = (uint8_t) n;
    }
}

static int
u_check (int st, const uint8_t *p, size_t len)
{
  size_t i;
  for (i = 0; i < len && U_BAD != st; i++)
    st = u_next[st][p[i]];
  return st;
}

/** The peer of one wslay frame context: input in chunks, output into
    a buffer allocated per frame. */
struct wl_io
{
  const uint8_t *in;
  size_t in_len;
  size_t pos;
  size_t chunk;
  uint8_t *out;
  size_t out_len;
};

static ssize_t
wl_recv (uint8_t *buf, size_t len, int flags, void *ud)
{
  struct wl_io *io = ud;
  size_t lim = io->chunk - io->pos % io->chunk;

  (void) flags;
  if (io->pos == io->in_len)
    return -1;
  if (lim > io->in_len - io->pos)
    lim = io->in_len - io->pos;
  if (len > lim)
    len = lim;
  memcpy (buf, io->in + io->pos, len);
  io->pos += len;
  return (ssize_t) len;
}

static ssize_t
wl_send (const uint8_t *data, size_t len, int flags, void *ud)
{
  struct wl_io *io = ud;

  (void) flags;
  memcpy (io->out + io->out_len, data, len);
  io->out_len += len;
  return (ssize_t) len;
}

static int
wl_genmask (uint8_t *buf, size_t len, void *ud)
{
  (void) ud;
  bench_rng (&rng_state_wl, buf, len);
  return 0;
}

static struct wl_io wl_io;
/** Each workload's own context (a send context keeps the masking state
    of the frame before, a receive context its read-ahead). */
static struct
{
  const struct workload *w;
  wslay_frame_context_ptr ctx;
} wl_ctxs[16];

static wslay_frame_context_ptr
wl_ctx_of (const struct workload *w)
{
  size_t i;
  for (i = 0; i < sizeof (wl_ctxs) / sizeof (wl_ctxs[0]); i++)
    if (wl_ctxs[i].w == w)
      return wl_ctxs[i].ctx;
  die (w->name, "no wslay context");
  return NULL;
}
/** The last payload a wslay decode assembled, for verify(). */
static uint8_t *wl_last;
static size_t wl_last_len;
/** While verifying: where the next payload's expected bytes are. */
static const uint8_t *wl_expect;

static void
wl_context (const struct workload *w)
{
  static const struct wslay_frame_callbacks cb = { wl_send, wl_recv,
                                                   wl_genmask };
  static size_t n;

  if (n == sizeof (wl_ctxs) / sizeof (wl_ctxs[0]))
    die (w->name, "too many wslay workloads");
  wl_ctxs[n].w = w;
  if (0 != wslay_frame_context_init (&wl_ctxs[n].ctx, &cb, &wl_io))
    die ("wslay", "wslay_frame_context_init failed");
  n++;
}

/** Receives every frame of the input, each into a fresh buffer (as our
    decoder hands them out), validating text; counts the frames. */
static void
wl_decode (struct workload *w, size_t chunk)
{
  wslay_frame_context_ptr ctx = wl_ctx_of (w);
  uint8_t *msg = NULL;
  size_t have = 0;
  int text = 0;
  int st = U_OK;

  wl_io.in = w->in;
  wl_io.in_len = w->in_len;
  wl_io.pos = 0;
  wl_io.chunk = chunk;
  w->done = 0;
  free (wl_last);
  wl_last = NULL;
  for (;;)
  {
    struct wslay_frame_iocb io;
    ssize_t r = wslay_frame_recv (ctx, &io);

    if (r < 0)
    {
      /* wslay reads ahead: the input is done when it asks for more.
         Before that, WANT_READ only means a header is still short. */
      if (WSLAY_ERR_WANT_READ == r && wl_io.pos < wl_io.in_len)
        continue;
      if (wl_io.pos == wl_io.in_len && NULL == msg)
        break;
      die (w->name, "wslay_frame_recv failed");
    }
    if (NULL == msg)
    {
      msg = malloc ((size_t) io.payload_length + 1);
      if (NULL == msg)
        die (w->name, "out of memory");
      have = 0;
      text = WSLAY_TEXT_FRAME == io.opcode;
      st = U_OK;
    }
    memcpy (msg + have, io.data, io.data_length);
    if (text && U_BAD == (st = u_check (st, io.data, io.data_length)))
      die (w->name, "invalid UTF-8");
    have += io.data_length;
    if (have == io.payload_length)
    {
      if (NULL != wl_expect)
      {
        if (0 != memcmp (msg, wl_expect, have))
          die (w->name, "payload differs");
        wl_expect += have;
      }
      if (text && U_OK != st)
        die (w->name, "text ends inside a character");
      msg[have] = '\0';
      w->done++;
      free (wl_last); /* only the last one is kept, for verify() */
      wl_last = msg;
      wl_last_len = have;
      msg = NULL;
    }
  }
}

static void
w_wl_decode_chunks (struct workload *w)
{
  wl_decode (w, CHUNK);
}

static void
w_wl_decode_whole (struct workload *w)
{
  wl_decode (w, w->in_len);
}

static void
w_wl_decode_bytewise (struct workload *w)
{
  wl_decode (w, 1);
}

/** Sends the input as one frame into a fresh buffer (as our encoder
    returns it), validating text first. */
static void
w_wl_encode (struct workload *w)
{
  wslay_frame_context_ptr ctx = wl_ctx_of (w);
  int client = NULL != strstr (w->name, "client");
  int text = ! client;
  struct wslay_frame_iocb io;

  if (text && U_OK != u_check (U_OK, w->in, w->in_len))
    die (w->name, "invalid UTF-8");
  wl_io.out = malloc (frame_size (w->in_len, client) + 1);
  if (NULL == wl_io.out)
    die (w->name, "out of memory");
  wl_io.out_len = 0;
  io.fin = 1;
  io.rsv = 0;
  io.opcode = text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME;
  io.payload_length = w->in_len;
  io.mask = (uint8_t) client;
  io.data = w->in;
  io.data_length = w->in_len;
  do
  {
    ssize_t r = wslay_frame_send (ctx, &io);
    if (r < 0)
      die (w->name, "wslay_frame_send failed");
    io.data += r;
    io.data_length -= (size_t) r;
  } while (0 != io.data_length);
  wl_io.out[wl_io.out_len] = '\0';
  free (enc_frame);
  enc_frame = (char *) wl_io.out;
  enc_frame_len = wl_io.out_len;
}
#endif

/** One iteration of a workload.  Kept out of line under a fixed name so
    that callgrind can collect exactly this (and nothing of the setup). */
#if defined(__GNUC__) && ! defined(__clang__)
#define NO_INLINE __attribute__ ((noinline, noclone, used))
#elif defined(__GNUC__)
#define NO_INLINE __attribute__ ((noinline, used))
#else
#define NO_INLINE
#endif
void bench_iteration (struct workload *w) NO_INLINE;

void
bench_iteration (struct workload *w)
{
  w->run (w);
}


static struct workload workloads[] = {
  { "memcpy", "memcpy 1 MiB (reference)", w_memcpy, UNIT_BYTES, 0, 0, NULL, 0,
    NULL, NULL, 0 },
  { "xor", "byte-wise XOR-mask loop 1 MiB (reference)", w_xor, UNIT_BYTES, 0, 0,
    NULL, 0, NULL, NULL, 0 },
  { "decode_binary", "masked binary decode, 4 KiB chunks", w_decode_chunks,
    UNIT_BYTES, 0, 0, NULL, 0, NULL, NULL, 0 },
  { "decode_ascii", "masked ASCII text decode, whole", w_decode_whole,
    UNIT_BYTES, 0, 0, NULL, 0, NULL, NULL, 0 },
  { "decode_utf8", "masked mixed UTF-8 text decode, whole", w_decode_whole,
    UNIT_BYTES, 0, 0, NULL, 0, NULL, NULL, 0 },
  { "decode_small", "65536 masked 16-byte binary frames", w_decode_whole,
    UNIT_FRAMES, 0, 0, NULL, 0, NULL, NULL, 0 },
  { "encode_client", "masked client binary encode", w_encode_binary, UNIT_BYTES,
    0, 0, NULL, 0, NULL, NULL, 0 },
  { "encode_ascii", "server ASCII text encode", w_encode_text, UNIT_BYTES, 0, 0,
    NULL, 0, NULL, NULL, 0 },
  { "encode_utf8", "server mixed UTF-8 text encode", w_encode_text, UNIT_BYTES,
    0, 0, NULL, 0, NULL, NULL, 0 },
  { "accept", "create_accept_header", w_accept, UNIT_CALLS, 1, 0, NULL, 0, NULL,
    NULL, 0 },
  { "decode_1byte", "64 KiB masked binary frame, 1 byte per call",
    w_decode_bytewise, UNIT_BYTES, 0, 0, NULL, 0, NULL, NULL, 0 },
#ifdef WS_BENCH_WSLAY
  /* The same workloads through wslay's frame layer (+ a UTF-8 DFA). */
  { "wslay_decode_binary", "wslay: masked binary decode, 4 KiB chunks",
    w_wl_decode_chunks, UNIT_BYTES, 0, 0, NULL, 0, NULL, NULL, 0 },
  { "wslay_decode_ascii", "wslay: masked ASCII text decode, whole",
    w_wl_decode_whole, UNIT_BYTES, 0, 0, NULL, 0, NULL, NULL, 0 },
  { "wslay_decode_utf8", "wslay: masked mixed UTF-8 text decode",
    w_wl_decode_whole, UNIT_BYTES, 0, 0, NULL, 0, NULL, NULL, 0 },
  { "wslay_decode_small", "wslay: 65536 masked 16-byte frames",
    w_wl_decode_whole, UNIT_FRAMES, 0, 0, NULL, 0, NULL, NULL, 0 },
  { "wslay_encode_client", "wslay: masked client binary encode", w_wl_encode,
    UNIT_BYTES, 0, 0, NULL, 0, NULL, NULL, 0 },
  { "wslay_encode_ascii", "wslay: server ASCII text encode", w_wl_encode,
    UNIT_BYTES, 0, 0, NULL, 0, NULL, NULL, 0 },
  { "wslay_encode_utf8", "wslay: server mixed UTF-8 text encode", w_wl_encode,
    UNIT_BYTES, 0, 0, NULL, 0, NULL, NULL, 0 },
  { "wslay_decode_1byte", "wslay: 64 KiB masked frame, 1 byte per call",
    w_wl_decode_bytewise, UNIT_BYTES, 0, 0, NULL, 0, NULL, NULL, 0 },
#endif
};
#define N_WORKLOADS (sizeof (workloads) / sizeof (workloads[0]))

static struct MHD_WebSocketStream *
new_stream (int flags)
{
  struct MHD_WebSocketStream *ws;

  if (MHD_WEBSOCKET_STATUS_OK
      != MHD_websocket_stream_init2 (&ws, flags, 0, malloc, realloc, free,
                                     &rng_state, bench_rng))
    die ("stream_init2", "failed");
  return ws;
}

/** Wraps @a pl (@a len bytes) in one masked frame as the workload's
    input, decoded by a server stream. */
static void
set_masked_input (struct workload *w, unsigned opcode, const unsigned char *pl,
                  size_t len)
{
  w->in = xmalloc (frame_size (len, 1));
  w->in_len = build_frame (w->in, opcode, pl, len, 1);
  w->bytes = len;
  w->units = (UNIT_BYTES == w->unit) ? len : w->units;
  w->ws = new_stream (MHD_WEBSOCKET_FLAG_SERVER);
}

static void
setup (struct workload *w, const unsigned char *bin, const unsigned char *ascii,
       const unsigned char *utf8)
{
  const char *n = w->name;

#ifdef WS_BENCH_WSLAY
  /* wslay's rows take the same inputs as ours. */
  if (0 == strncmp (n, "wslay_", 6))
  {
    n += 6;
    wl_context (w);
    u_init ();
  }
#endif

  if (0 == strcmp (n, "memcpy") || 0 == strcmp (n, "xor"))
  {
    w->in = xmalloc (MIB);
    memcpy (w->in, bin, MIB);
    w->in_len = w->bytes = w->units = MIB;
    w->out = xmalloc (MIB);
    memset (w->out, 0, MIB);
  }
  else if (0 == strcmp (n, "decode_binary"))
    set_masked_input (w, 2, bin, MIB);
  else if (0 == strcmp (n, "decode_ascii"))
    set_masked_input (w, 1, ascii, MIB);
  else if (0 == strcmp (n, "decode_utf8"))
    set_masked_input (w, 1, utf8, MIB);
  else if (0 == strcmp (n, "decode_1byte"))
    set_masked_input (w, 2, bin, ONE_BYTE_PAYLOAD);
  else if (0 == strcmp (n, "decode_small"))
  {
    size_t one = frame_size (SMALL_PAYLOAD, 1);
    size_t i;

    w->in = xmalloc (one * SMALL_FRAMES);
    for (i = 0; i < SMALL_FRAMES; i++)
      build_frame (w->in + i * one, 2, bin + i * SMALL_PAYLOAD, SMALL_PAYLOAD,
                   1);
    w->in_len = one * SMALL_FRAMES;
    w->units = SMALL_FRAMES;
    w->bytes = (size_t) SMALL_FRAMES * SMALL_PAYLOAD;
    w->ws = new_stream (MHD_WEBSOCKET_FLAG_SERVER);
  }
  else if (0 == strncmp (n, "encode_", 7))
  {
    const unsigned char *src = bin;

    if (0 == strcmp (n, "encode_ascii"))
      src = ascii;
    else if (0 == strcmp (n, "encode_utf8"))
      src = utf8;
    w->in = xmalloc (MIB);
    memcpy (w->in, src, MIB);
    w->in_len = w->bytes = w->units = MIB;
    w->ws =
      new_stream (0 == strcmp (n, "encode_client") ? MHD_WEBSOCKET_FLAG_CLIENT
                                                   : MHD_WEBSOCKET_FLAG_SERVER);
  }
  else if (0 == strcmp (n, "accept"))
  {
    w->units = 1;
    w->bytes = 0;
  }
}

/** Checks one run of @a w byte-exactly against the inputs; aborts on any
    difference. */
static void
verify (struct workload *w, const unsigned char *bin,
        const unsigned char *ascii, const unsigned char *utf8)
{
  const char *n = w->name;

#ifdef WS_BENCH_WSLAY
  if (0 == strncmp (n, "wslay_", 6) && 0 == strncmp (n + 6, "decode_", 7))
  {
    /* Every payload, in order, against the input they were made of. */
    const unsigned char *want = bin;
    n += 6;
    if (0 == strcmp (n, "decode_ascii"))
      want = ascii;
    else if (0 == strcmp (n, "decode_utf8"))
      want = utf8;
    wl_expect = want;
    w->run (w);
    wl_expect = NULL;
    if (w->done != ((0 == strcmp (n, "decode_small")) ? SMALL_FRAMES : 1)
        || NULL == wl_last
        || 0 != memcmp (wl_last, want + w->bytes - wl_last_len, wl_last_len))
      die (w->name, "decoded payloads differ");
    return;
  }
  if (0 == strncmp (n, "wslay_", 6))
    n += 6; /* the encoders' frames are checked as ours are */
#endif
  if (0 == strcmp (n, "memcpy"))
  {
    memset (w->out, 0, MIB);
    w->run (w); /* not bench_iteration: callgrind counts only -n runs */
    if (0 != memcmp (w->out, bin, MIB))
      die (n, "output differs");
  }
  else if (0 == strcmp (n, "xor"))
  {
    size_t i;

    memset (w->out, 0, MIB);
    w->run (w);
    for (i = 0; i < MIB; i++)
      if (w->out[i] != (unsigned char) (bin[i] ^ mask_key[i & 3]))
        die (n, "output differs");
  }
  else if (0 == strncmp (n, "decode_", 7))
  {
    const unsigned char *want = bin;
    char *pl = NULL;
    size_t pll = 0;
    size_t chunk = w->in_len;

    if (0 == strcmp (n, "decode_ascii"))
      want = ascii;
    else if (0 == strcmp (n, "decode_utf8"))
      want = utf8;
    if (0 == strcmp (n, "decode_binary"))
      chunk = CHUNK;
    else if (0 == strcmp (n, "decode_1byte"))
      chunk = 1;
    if (0 == strcmp (n, "decode_small"))
    {
      /* Every frame's payload, in order. */
      size_t one = frame_size (SMALL_PAYLOAD, 1);
      size_t i;

      for (i = 0; i < SMALL_FRAMES; i++)
      {
        size_t rd;
        int st = MHD_websocket_decode (w->ws, (const char *) w->in + i * one,
                                       one, &rd, &pl, &pll);
        if (MHD_WEBSOCKET_STATUS_BINARY_FRAME != st || rd != one
            || SMALL_PAYLOAD != pll
            || 0 != memcmp (pl, bin + i * SMALL_PAYLOAD, SMALL_PAYLOAD))
          die (n, "decoded frame differs");
        MHD_websocket_free (w->ws, pl);
      }
      w->run (w);
      if (SMALL_FRAMES != w->done)
        die (n, "wrong frame count");
      return;
    }
    feed (w, chunk, &pl, &pll);
    if (1 != w->done || pll != w->bytes || NULL == pl
        || 0 != memcmp (pl, want, w->bytes) || '\0' != pl[pll])
      die (n, "decoded payload differs");
    MHD_websocket_free (w->ws, pl);
  }
  else if (0 == strncmp (n, "encode_", 7))
  {
    /* Decode the frame with the opposite side: it must give the input. */
    int client = (0 == strcmp (n, "encode_client"));
    struct MHD_WebSocketStream *peer = new_stream (
      client ? MHD_WEBSOCKET_FLAG_SERVER : MHD_WEBSOCKET_FLAG_CLIENT);
    int want_st = client ? MHD_WEBSOCKET_STATUS_BINARY_FRAME
                         : MHD_WEBSOCKET_STATUS_TEXT_FRAME;
    size_t rd;
    char *pl;
    size_t pll;
    int st;

    w->run (w);
    if (enc_frame_len != frame_size (MIB, client))
      die (n, "frame has the wrong length");
    if (client && 0 == memcmp (enc_frame + 10, "\0\0\0\0", 4))
      die (n, "client frame has a zero mask (RNG unused?)");
    st = MHD_websocket_decode (peer, enc_frame, enc_frame_len, &rd, &pl, &pll);
    if (want_st != st || rd != enc_frame_len || MIB != pll
        || 0 != memcmp (pl, w->in, MIB))
      die (n, "encoded frame does not decode to the input");
    MHD_websocket_free (peer, pl);
    MHD_websocket_stream_free (peer);
  }
  else if (0 == strcmp (n, "accept"))
  {
    memset (accept_out, 0x55, sizeof (accept_out));
    w->run (w);
    if (0 != memcmp (accept_out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 29))
      die (n, "wrong accept value");
  }
}

/** Gives back the frame an encode workload kept for checking. */
static void
release_frame (struct workload *w)
{
  if (NULL != enc_frame)
    MHD_websocket_free (w->ws, enc_frame);
  enc_frame = NULL;
  enc_frame_len = 0;
}

/* ---- timing --------------------------------------------------------- */

static double
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static double
time_iters (struct workload *w, size_t iters)
{
  double t0 = now_ns ();
  size_t i;

  for (i = 0; i < iters; i++)
    bench_iteration (w);
  return now_ns () - t0;
}

/** Iterations for one round of at least MIN_ROUND_NS; the calibration
    doubles as the warm-up. */
static size_t
calibrate (struct workload *w)
{
  size_t iters = 1;

  for (;;)
  {
    double t = time_iters (w, iters);
    if (t >= MIN_ROUND_NS)
      return iters;
    iters = (t < MIN_ROUND_NS / 16) ? iters * 8 : iters * 2;
  }
}

/**
 * Best nanoseconds per iteration of @a w over @a rounds rounds, and in
 * @a ref_ns the same for the reference @a ref, whose rounds alternate
 * with those of @a w: on a machine shared with other work, both see the
 * same conditions, so their ratio holds better than either time.
 */
static double
measure (struct workload *w, struct workload *ref, unsigned rounds,
         double *ref_ns)
{
  size_t iters = calibrate (w);
  size_t ref_iters = calibrate (ref);
  double best = 0;
  double ref_best = 0;
  unsigned r;

  for (r = 0; r < rounds; r++)
  {
    double tr = time_iters (ref, ref_iters) / (double) ref_iters;
    double t = time_iters (w, iters) / (double) iters;
    if (0 == r || t < best)
      best = t;
    if (0 == r || tr < ref_best)
      ref_best = tr;
  }
  *ref_ns = ref_best;
  return best;
}

/** A memcpy workload of @a len bytes, as the reference for others. */
static void
memcpy_ref (struct workload *m, size_t len, const unsigned char *bin)
{
  memset (m, 0, sizeof (*m));
  m->name = "memcpy";
  m->desc = "";
  m->run = w_memcpy;
  m->unit = UNIT_BYTES;
  m->units = m->bytes = m->in_len = len;
  m->in = xmalloc (len);
  m->out = xmalloc (len);
  memcpy (m->in, bin, len);
  memset (m->out, 0, len);
}

static void
usage (void)
{
  fprintf (stderr,
           "usage: bench [-c CPU] [-r ROUNDS] [-w NAME [-n ITERATIONS]] "
           "[-l]\n"
           "  -c CPU     pin to this CPU (default 0; -1: do not pin)\n"
           "  -r ROUNDS  best of ROUNDS timed rounds (default 7)\n"
           "  -w NAME    run only NAME, untimed, ITERATIONS times (for "
           "callgrind)\n"
           "  -n N       iterations for -w (default 10)\n"
           "  -l         list workloads: name, unit, units per iteration\n");
  exit (EXIT_FAILURE);
}

static const char *
unit_name (enum unit u)
{
  return (UNIT_BYTES == u) ? "byte" : (UNIT_FRAMES == u) ? "frame" : "call";
}

int
main (int argc, char **argv)
{
  int cpu = 0;
  unsigned rounds = 7;
  const char *only = NULL;
  unsigned long n_iter = 10;
  int list = 0;
  int opt;
  unsigned char *bin;
  unsigned char *ascii;
  unsigned char *utf8;
  struct workload mc_mib;
  struct workload mc_64k;
  size_t i;

  while (-1 != (opt = getopt (argc, argv, "c:r:w:n:l")))
  {
    switch (opt)
    {
    case 'c':
      cpu = atoi (optarg);
      break;
    case 'r':
      rounds = (unsigned) strtoul (optarg, NULL, 10);
      if (0 == rounds)
        usage ();
      break;
    case 'w':
      only = optarg;
      break;
    case 'n':
      n_iter = strtoul (optarg, NULL, 10);
      break;
    case 'l':
      list = 1;
      break;
    default:
      usage ();
    }
  }
  if (optind != argc)
    usage ();
  if (list)
  {
    /* Units per iteration are fixed by the definitions above. */
    for (i = 0; i < N_WORKLOADS; i++)
    {
      const char *n = workloads[i].name;
      size_t u = MIB;
      if (NULL != strstr (n, "decode_small"))
        u = SMALL_FRAMES;
      else if (0 == strcmp (n, "accept"))
        u = 1;
      else if (NULL != strstr (n, "decode_1byte"))
        u = ONE_BYTE_PAYLOAD;
      printf ("%s %s %zu\n", n, unit_name (workloads[i].unit), u);
    }
    return EXIT_SUCCESS;
  }

  if (cpu >= 0)
  {
    cpu_set_t set;
    CPU_ZERO (&set);
    CPU_SET (cpu, &set);
    if (0 != sched_setaffinity (0, sizeof (set), &set))
      perror ("bench: sched_setaffinity (running unpinned)");
  }

  /* The 16-byte frames take their payloads from the binary data too. */
  bin = xmalloc (MIB);
  ascii = xmalloc (MIB);
  utf8 = xmalloc (MIB);
  fill_binary (bin, MIB, 1);
  fill_ascii (ascii, MIB, 2);
  fill_mixed_utf8 (utf8, MIB, 3);

  if (NULL != only)
  {
    struct workload *w = NULL;
    unsigned long k;

    for (i = 0; i < N_WORKLOADS; i++)
      if (0 == strcmp (workloads[i].name, only))
        w = &workloads[i];
    if (NULL == w)
      die (only, "no such workload (see -l)");
    setup (w, bin, ascii, utf8);
    verify (w, bin, ascii, utf8);
    for (k = 0; k < n_iter; k++)
      bench_iteration (w);
    release_frame (w);
    printf ("%s: %lu iterations of %zu %ss\n", w->name, n_iter, w->units,
            unit_name (w->unit));
    return EXIT_SUCCESS;
  }

  /* Every long-lived buffer first, then the checks: the buffers that
     the checks (and the timed runs) allocate and free then churn above
     them, rather than in holes between them, as in a server whose
     connections outlive its messages. */
  memcpy_ref (&mc_mib, MIB, bin);
  memcpy_ref (&mc_64k, ONE_BYTE_PAYLOAD, bin);
  for (i = 0; i < N_WORKLOADS; i++)
    setup (&workloads[i], bin, ascii, utf8);
  for (i = 0; i < N_WORKLOADS; i++)
  {
    verify (&workloads[i], bin, ascii, utf8);
    release_frame (&workloads[i]);
  }
  printf ("pinned to CPU %d, best of %u rounds of >= %.0f ms, each round "
          "after one of memcpy\nof the same size (the %% memcpy column); "
          "all outputs verified\n\n",
          cpu, rounds, MIN_ROUND_NS / 1e6);
  printf ("%-46s %16s %9s %8s %16s\n", "workload", "rate", "% memcpy",
          "ns/byte", "ns per unit");
  {
    double mib_ns = 0;
    double k64_ns = 0;

    for (i = 0; i < N_WORKLOADS; i++)
    {
      struct workload *w = &workloads[i];
      /* memcpy of the same payload size (1 MiB, or 64 KiB) */
      struct workload *ref = (ONE_BYTE_PAYLOAD == w->bytes) ? &mc_64k : &mc_mib;
      double ref_ns;
      double ns = measure (w, ref, rounds, &ref_ns);
      double per_unit = ns / (double) w->units;
      char rate[32];
      char ratio[16];
      char nsb[16];

      release_frame (w);
      if (ref == &mc_64k)
        k64_ns = ref_ns;
      else
        mib_ns = ref_ns;
      if (UNIT_BYTES == w->unit)
        snprintf (rate, sizeof (rate), "%.1f MB/s",
                  (double) w->bytes / ns * 1e3);
      else if (UNIT_FRAMES == w->unit)
        snprintf (rate, sizeof (rate), "%.2f Mframe/s", 1e3 / per_unit);
      else
        snprintf (rate, sizeof (rate), "%.3f Mcall/s", 1e3 / per_unit);
      if (0 != w->bytes)
      {
        snprintf (ratio, sizeof (ratio), "%.1f%%", 100.0 * ref_ns / ns);
        snprintf (nsb, sizeof (nsb), "%.3f", ns / (double) w->bytes);
      }
      else
      {
        snprintf (ratio, sizeof (ratio), "-");
        snprintf (nsb, sizeof (nsb), "-");
      }
      printf ("%-46s %16s %9s %8s %10.2f/%-5s\n", w->desc, rate, ratio, nsb,
              per_unit, unit_name (w->unit));
    }
    printf ("\n(memcpy, best seen: 1 MiB %.1f MB/s; 64 KiB %.1f MB/s, the "
            "reference for the 1-byte workloads)\n",
            (double) MIB / mib_ns * 1e3,
            (double) ONE_BYTE_PAYLOAD / k64_ns * 1e3);
    free (mc_mib.in);
    free (mc_mib.out);
    free (mc_64k.in);
    free (mc_64k.out);
  }

  for (i = 0; i < N_WORKLOADS; i++)
  {
    if (NULL != workloads[i].ws)
    {
      MHD_websocket_stream_free (workloads[i].ws);
      workloads[i].ws = NULL;
    }
    free (workloads[i].in);
    free (workloads[i].out);
  }
  free (bin);
  free (ascii);
  free (utf8);
  return EXIT_SUCCESS;
}
