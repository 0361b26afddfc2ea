/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file fuzz_roundtrip.c
 * @brief libFuzzer harness: encode what the input says, decode it with a
 *        stream of the opposite role and get the same messages back.
 *
 * Input layout:
 *   [0] bit0: the encoder is a CLIENT (the decoder a server) else the
 *       reverse; bit1: the decoder wants fragments; bit2: pass utf8_step
 *       also for unfragmented text (when clear, each text fragment is
 *       first tried without utf8_step, which must be refused)
 *   [1] seed for the masks and for the split of the wire bytes
 *   then operations: op byte, length byte, payload bytes
 *     op % 5: 0 text, 1 binary, 2 ping, 3 pong, 4 close
 *     (op >> 3) & 3: fragmentation for text/binary; for close: 0 no
 *       reason, 1 the raw code from the payload, 2-3 a code allowed on
 *       the wire
 *     op & 0x40: 256 more bytes; op & 0x80 (binary only): 64 KiB more
 *       (the missing bytes are filled with 'a').
 *
 * Every encode result is checked against the rules (reference UTF-8
 * automaton for text); frames that form a legal sequence are kept and
 * must decode to exactly the expected events.
 */
#include "fuzz_common.h"

#define FZ_MAX_OPS 128

struct fz_buf
{
  unsigned char *p;
  size_t len;
  size_t cap;
};

static void
buf_add (struct fz_buf *b, const void *p, size_t len)
{
  if (b->len + len + 1 > b->cap)
  {
    size_t nc = (b->cap ? b->cap : 64);
    while (nc < b->len + len + 1)
      nc *= 2;
    b->p = realloc (b->p, nc);
    FZ_CHECK (NULL != b->p);
    b->cap = nc;
  }
  if (len > 0)
    memcpy (b->p + b->len, p, len);
  b->len += len;
}

struct fz_ev
{
  int status;
  struct fz_buf data;
};

struct fz_evlist
{
  struct fz_ev ev[FZ_MAX_OPS * 2 + 4];
  size_t n;
};

static void
ev_add (struct fz_evlist *l, int status, const void *p, size_t len)
{
  struct fz_ev *e;
  FZ_CHECK (l->n < sizeof (l->ev) / sizeof (l->ev[0]));
  e = &l->ev[l->n++];
  memset (e, 0, sizeof (*e));
  e->status = status;
  buf_add (&e->data, p, len);
}

static void
ev_free (struct fz_evlist *l)
{
  size_t i;
  for (i = 0; i < l->n; i++)
    free (l->ev[i].data.p);
  l->n = 0;
}

static int
wire_close_code_ok (unsigned int c)
{
  return ! ((c < 1000) || ((c >= 1004) && (c <= 1006))
            || ((c >= 1015) && (c <= 2999)));
}

/* Checks the frame's first two bytes and its trailing NUL. */
static void
check_frame (const char *f, size_t flen, int client, unsigned char b0)
{
  FZ_CHECK (NULL != f && flen >= 2);
  FZ_CHECK (0 == f[flen]);
  FZ_CHECK ((unsigned char) f[0] == b0);
  FZ_CHECK (((unsigned char) f[1] & 0x80) == (client ? 0x80 : 0));
}

static unsigned char
data_b0 (int opcode, int frag)
{
  switch (frag)
  {
  case MHD_WEBSOCKET_FRAGMENTATION_NONE:
    return (unsigned char) (0x80 | opcode);
  case MHD_WEBSOCKET_FRAGMENTATION_FIRST:
    return (unsigned char) opcode;
  case MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING:
    return 0x00;
  default:
    return 0x80;
  }
}

/* Length of the prefix of buf that ends on a character boundary (buf
   itself starts on one and is valid so far). */
static size_t
utf8_complete_prefix (const unsigned char *buf, size_t len)
{
  size_t i;
  size_t last = 0;
  int st = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  for (i = 0; i < len; i++)
  {
    st = fz_utf8_next (st, buf[i]);
    FZ_CHECK (FZ_UTF8_ERROR != st);
    if (MHD_WEBSOCKET_UTF8STEP_NORMAL == st)
      last = i + 1;
  }
  return last;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static struct fz_evlist expect;
  static struct fz_evlist got;
  struct MHD_WebSocketStream *enc = NULL;
  struct MHD_WebSocketStream *dec = NULL;
  struct fz_buf wire = { NULL, 0, 0 };
  struct fz_buf msg = { NULL, 0, 0 };   /* reassembled message so far */
  struct fz_buf carry = { NULL, 0, 0 }; /* held-back UTF-8 tail */
  unsigned char *payload = NULL;
  int client;
  int want_frag;
  int step_for_none;
  int open = 0; /* 0 none, 1 text, 2 binary message open */
  int closed = 0;
  int text_step = MHD_WEBSOCKET_UTF8STEP_NORMAL;
  size_t pos = 2;
  unsigned int nops = 0;
  uint32_t split_rng;
  size_t split_max;
  size_t i;
  int r;

  if (size < 2)
    return 0;
  client = data[0] & 1;
  want_frag = (data[0] >> 1) & 1;
  step_for_none = (data[0] >> 2) & 1;
  split_rng = (uint32_t) data[1] * 2246822519u + 7;
  split_max = 1 + (data[1] % 7) * 11;
  fz_live = 0;
  fz_alloc_reset (0);
  fz_seed (data[1] + 1);
  expect.n = 0;
  got.n = 0;

  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK
            == MHD_websocket_stream_init2 (
              &enc, client ? MHD_WEBSOCKET_FLAG_CLIENT : 0, 0, fz_malloc,
              fz_realloc, fz_free, NULL, fz_rng_cb));
  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK
            == MHD_websocket_stream_init2 (
              &dec,
              (client ? 0 : MHD_WEBSOCKET_FLAG_CLIENT)
                | (want_frag ? MHD_WEBSOCKET_FLAG_WANT_FRAGMENTS : 0),
              0, fz_malloc, fz_realloc, fz_free, NULL, fz_rng_cb));

  while (pos < size && nops++ < FZ_MAX_OPS)
  {
    unsigned char op = data[pos++];
    int kind = op % 5;
    int frag = (op >> 3) & 3;
    size_t want_len = (pos < size) ? data[pos++] : 0;
    size_t avail;
    size_t plen;
    char *f = NULL;
    size_t flen = 0;
    int keep = 0;

    if (op & 0x40)
      want_len += 256;
    if ((op & 0x80) && (1 == kind))
      want_len += 65536;
    avail = size - pos;
    plen = want_len;
    if (0 == (op & 0xC0) && plen > avail)
      plen = avail;
    free (payload);
    payload = malloc (plen + 1);
    FZ_CHECK (NULL != payload);
    memset (payload, 'a', plen);
    memcpy (payload, data + pos, plen < avail ? plen : avail);
    pos += plen < avail ? plen : avail;

    if (0 == kind)
    {
      int start = (frag == MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING
                   || frag == MHD_WEBSOCKET_FRAGMENTATION_LAST)
                    ? ((1 == open) ? text_step : MHD_WEBSOCKET_UTF8STEP_NORMAL)
                    : MHD_WEBSOCKET_UTF8STEP_NORMAL;
      int ref = fz_utf8_run (start, payload, plen);
      int ok;
      int step = start;
      int *stepp = (frag == MHD_WEBSOCKET_FRAGMENTATION_NONE && ! step_for_none)
                     ? NULL
                     : &step;
      if (0 == plen)
        ok = 1; /* an empty text is not judged (as in the original) */
      else if ((frag == MHD_WEBSOCKET_FRAGMENTATION_NONE)
               || (frag == MHD_WEBSOCKET_FRAGMENTATION_LAST))
        ok = (MHD_WEBSOCKET_UTF8STEP_NORMAL == ref);
      else
        ok = (FZ_UTF8_ERROR != ref);
      if ((frag != MHD_WEBSOCKET_FRAGMENTATION_NONE) && ! step_for_none)
      {
        /* A fragment without utf8_step cannot be checked: refused. */
        r = MHD_websocket_encode_text (enc, (const char *) payload, plen, frag,
                                       &f, &flen, NULL);
        FZ_CHECK (MHD_WEBSOCKET_STATUS_PARAMETER_ERROR == r);
        FZ_CHECK (NULL == f && 0 == flen);
      }
      r = MHD_websocket_encode_text (enc, (const char *) payload, plen, frag,
                                     &f, &flen, stepp);
      if (! ok)
      {
        FZ_CHECK (MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR == r);
        FZ_CHECK (NULL == f && 0 == flen);
        continue;
      }
      FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == r);
      check_frame (f, flen, client, data_b0 (1, frag));
      if (NULL != stepp)
        FZ_CHECK (step == ref);
      /* Is the frame legal at this point of the conversation? */
      if (! closed)
      {
        if (frag == MHD_WEBSOCKET_FRAGMENTATION_NONE
            || frag == MHD_WEBSOCKET_FRAGMENTATION_FIRST)
          keep = (0 == open);
        else
          keep = (1 == open);
        /* An empty LAST fragment after a cut character is encoded, but
           ends the message inside that character: a decoder refuses it,
           so it is not sent. */
        if ((frag == MHD_WEBSOCKET_FRAGMENTATION_LAST)
            && (MHD_WEBSOCKET_UTF8STEP_NORMAL != ref))
          keep = 0;
      }
      if (keep)
      {
        switch (frag)
        {
        case MHD_WEBSOCKET_FRAGMENTATION_NONE:
          ev_add (&expect, MHD_WEBSOCKET_STATUS_TEXT_FRAME, payload, plen);
          break;
        case MHD_WEBSOCKET_FRAGMENTATION_FIRST:
          open = 1;
          msg.len = 0;
          carry.len = 0;
          /* fall through */
        default:
          text_step = ref;
          if (want_frag)
          {
            size_t cut;
            int st = (frag == MHD_WEBSOCKET_FRAGMENTATION_FIRST)
                       ? MHD_WEBSOCKET_STATUS_TEXT_FIRST_FRAGMENT
                     : (frag == MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING)
                       ? MHD_WEBSOCKET_STATUS_TEXT_NEXT_FRAGMENT
                       : MHD_WEBSOCKET_STATUS_TEXT_LAST_FRAGMENT;
            buf_add (&carry, payload, plen);
            cut = utf8_complete_prefix (carry.p, carry.len);
            ev_add (&expect, st, carry.p, cut);
            memmove (carry.p, carry.p + cut, carry.len - cut);
            carry.len -= cut;
          }
          else
          {
            buf_add (&msg, payload, plen);
            if (frag == MHD_WEBSOCKET_FRAGMENTATION_LAST)
              ev_add (&expect, MHD_WEBSOCKET_STATUS_TEXT_FRAME, msg.p, msg.len);
          }
          if (frag == MHD_WEBSOCKET_FRAGMENTATION_LAST)
            open = 0;
          break;
        }
      }
    }
    else if (1 == kind)
    {
      r = MHD_websocket_encode_binary (enc, (const char *) payload, plen, frag,
                                       &f, &flen);
      FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == r);
      check_frame (f, flen, client, data_b0 (2, frag));
      if (! closed)
      {
        if (frag == MHD_WEBSOCKET_FRAGMENTATION_NONE
            || frag == MHD_WEBSOCKET_FRAGMENTATION_FIRST)
          keep = (0 == open);
        else
          keep = (2 == open);
      }
      if (keep)
      {
        if (frag == MHD_WEBSOCKET_FRAGMENTATION_NONE)
          ev_add (&expect, MHD_WEBSOCKET_STATUS_BINARY_FRAME, payload, plen);
        else
        {
          if (frag == MHD_WEBSOCKET_FRAGMENTATION_FIRST)
          {
            open = 2;
            msg.len = 0;
          }
          if (want_frag)
            ev_add (&expect,
                    (frag == MHD_WEBSOCKET_FRAGMENTATION_FIRST)
                      ? MHD_WEBSOCKET_STATUS_BINARY_FIRST_FRAGMENT
                    : (frag == MHD_WEBSOCKET_FRAGMENTATION_FOLLOWING)
                      ? MHD_WEBSOCKET_STATUS_BINARY_NEXT_FRAGMENT
                      : MHD_WEBSOCKET_STATUS_BINARY_LAST_FRAGMENT,
                    payload, plen);
          else
          {
            buf_add (&msg, payload, plen);
            if (frag == MHD_WEBSOCKET_FRAGMENTATION_LAST)
              ev_add (&expect, MHD_WEBSOCKET_STATUS_BINARY_FRAME, msg.p,
                      msg.len);
          }
          if (frag == MHD_WEBSOCKET_FRAGMENTATION_LAST)
            open = 0;
        }
      }
    }
    else if ((2 == kind) || (3 == kind))
    {
      if (2 == kind)
        r = MHD_websocket_encode_ping (enc, (const char *) payload, plen, &f,
                                       &flen);
      else
        r = MHD_websocket_encode_pong (enc, (const char *) payload, plen, &f,
                                       &flen);
      if (plen > 125)
      {
        FZ_CHECK (MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED == r);
        FZ_CHECK (NULL == f && 0 == flen);
        continue;
      }
      FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == r);
      check_frame (f, flen, client, (2 == kind) ? 0x89 : 0x8A);
      keep = 1;
      ev_add (&expect,
              (2 == kind) ? MHD_WEBSOCKET_STATUS_PING_FRAME
                          : MHD_WEBSOCKET_STATUS_PONG_FRAME,
              payload, plen);
    }
    else
    {
      unsigned int code = 0;
      const char *reason = NULL;
      size_t rlen = 0;
      if (0 != frag)
      {
        code =
          (plen >= 2) ? (((unsigned int) payload[0] << 8) | payload[1]) : 1000;
        if (frag >= 2)
        {
          code = 1000 + code % 4000;
          if (! wire_close_code_ok (code))
            code = 1000 + code % 4;
        }
        if (plen > 2)
        {
          reason = (const char *) payload + 2;
          rlen = plen - 2;
        }
      }
      else if (plen > 0 && (payload[0] & 1))
      {
        /* NO_REASON with a text must be refused. */
        reason = (const char *) payload;
        rlen = plen;
      }
      /* Each applicable error is acceptable: the contract gives no
         order among them. */
      {
        int param =
          ((0 == code) && (0 != rlen)) || ((0 != code) && (code < 1000));
        int too_long = (rlen > 123);
        int utf8 = ! fz_utf8_valid (reason, rlen);
        r = MHD_websocket_encode_close (enc, (unsigned short) code, reason,
                                        rlen, &f, &flen);
        if (param || too_long || utf8)
          FZ_CHECK (
            (param && MHD_WEBSOCKET_STATUS_PARAMETER_ERROR == r)
            || (too_long && MHD_WEBSOCKET_STATUS_MAXIMUM_SIZE_EXCEEDED == r)
            || (utf8 && MHD_WEBSOCKET_STATUS_UTF8_ENCODING_ERROR == r));
        else
          FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == r);
      }
      if (MHD_WEBSOCKET_STATUS_OK != r)
      {
        FZ_CHECK (NULL == f && 0 == flen);
        continue;
      }
      check_frame (f, flen, client, 0x88);
      /* Codes the decoder must refuse stay off the wire. */
      if ((0 == code) || wire_close_code_ok (code))
      {
        unsigned char cp[125];
        keep = 1;
        closed = 1;
        if (0 != code)
        {
          cp[0] = (unsigned char) (code >> 8);
          cp[1] = (unsigned char) code;
          if (rlen > 0)
            memcpy (cp + 2, reason, rlen);
        }
        ev_add (&expect, MHD_WEBSOCKET_STATUS_CLOSE_FRAME, cp,
                code ? 2 + rlen : 0);
      }
    }
    if (keep)
      buf_add (&wire, f, flen);
    FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == MHD_websocket_free (enc, f));
  }

  /* Decode the kept frames in random slices. */
  {
    size_t wpos = 0;
    size_t calls = 0;
    while (wpos < wire.len)
    {
      size_t given;
      size_t rd = 0;
      char *pl = NULL;
      size_t pl_len = 0;
      split_rng ^= split_rng << 13;
      split_rng ^= split_rng >> 17;
      split_rng ^= split_rng << 5;
      given = 1 + split_rng % split_max;
      if (split_max == 67) /* one run in seven feeds everything at once */
        given = wire.len - wpos;
      if (given > wire.len - wpos)
        given = wire.len - wpos;
      FZ_CHECK (++calls <= 2 * wire.len + 8);
      r = MHD_websocket_decode (dec, (const char *) wire.p + wpos, given, &rd,
                                &pl, &pl_len);
      if (r < 0)
      {
        fprintf (stderr, "decode of legal frames failed: %d at %zu\n", r,
                 wpos + rd);
        abort ();
      }
      FZ_CHECK (rd <= given);
      wpos += rd;
      if (MHD_WEBSOCKET_STATUS_OK == r)
      {
        FZ_CHECK (rd == given);
        continue;
      }
      FZ_CHECK (rd > 0);
      FZ_CHECK ((NULL == pl) == (0 == pl_len));
      if (NULL != pl)
        FZ_CHECK (0 == pl[pl_len]);
      ev_add (&got, r, pl, pl_len);
      MHD_websocket_free (dec, pl);
    }
  }

  if (expect.n != got.n)
  {
    fprintf (stderr, "expected %zu events, decoded %zu\n", expect.n, got.n);
    abort ();
  }
  for (i = 0; i < expect.n; i++)
  {
    const struct fz_ev *a = &expect.ev[i];
    const struct fz_ev *b = &got.ev[i];
    if ((a->status != b->status) || (a->data.len != b->data.len)
        || ((a->data.len > 0) && memcmp (a->data.p, b->data.p, a->data.len)))
    {
      fprintf (stderr,
               "event %zu: expected status %d len %zu, got status %d len "
               "%zu\n",
               i, a->status, a->data.len, b->status, b->data.len);
      abort ();
    }
  }

  ev_free (&expect);
  ev_free (&got);
  free (payload);
  free (wire.p);
  free (msg.p);
  free (carry.p);
  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == MHD_websocket_stream_free (enc));
  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == MHD_websocket_stream_free (dec));
  FZ_CHECK (0 == fz_live);
  return 0;
}
