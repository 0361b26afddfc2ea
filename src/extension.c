/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file extension.c
 * @brief permessage-deflate negotiation (RFC 7692 section 7): reading
 *        Sec-WebSocket-Extensions values, choosing an offer, writing
 *        offers and answers, checking an answer.
 *
 * The header's grammar (RFC 6455 section 9.1 over RFC 7230 section 7):
 *
 *   list      = [ element ] *( OWS "," OWS [ element ] )
 *   element   = token *( OWS ";" OWS param )
 *   param     = token [ BWS "=" BWS ( token / quoted-string ) ]
 *
 * A quoted value must unescape to a token.  Any other byte makes the
 * whole value malformed: a server then declines every offer, since
 * where one element ends can no longer be trusted.
 */
#include "internal.h"
#include "extension.h"

#include <stdio.h>
#include <string.h>

/** Long enough for "15"; longer values are invalid anyway. */
#define VALUE_MAX 8

/** RFC 7230 tchar. */
static bool
is_tchar (unsigned char c)
{
  if (((c >= 'a') && (c <= 'z')) || ((c >= 'A') && (c <= 'Z'))
      || ((c >= '0') && (c <= '9')))
    return true;
  return (0 != c) && (NULL != strchr ("!#$%&'*+-.^_`|~", c));
}

static const char *
skip_ows (const char *s)
{
  while ((' ' == *s) || ('\t' == *s))
    s++;
  return s;
}

/** Case-insensitive comparison of @a n bytes at @a s with @a lit. */
static bool
name_is (const char *s, size_t n, const char *lit)
{
  size_t i;

  if (strlen (lit) != n)
    return false;
  for (i = 0; i < n; i++)
  {
    unsigned char c = (unsigned char) s[i];
    if ((c >= 'A') && (c <= 'Z'))
      c = (unsigned char) (c - 'A' + 'a');
    if (c != (unsigned char) lit[i])
      return false;
  }
  return true;
}

/** A window size value: "8" to "15", no sign, no leading zero. */
static int
parse_bits (const char *v, size_t n)
{
  int bits = 0;
  size_t i;

  if ((0 == n) || (n > 2) || ('0' == v[0]))
    return -1;
  for (i = 0; i < n; i++)
  {
    if ((v[i] < '0') || (v[i] > '9'))
      return -1;
    bits = bits * 10 + (v[i] - '0');
  }
  if ((bits < WS_PMD_MIN_BITS) || (bits > WS_PMD_MAX_BITS))
    return -1;
  return bits;
}

/** The parameter names of RFC 7692, in the order answers list them. */
enum pmd_param
{
  P_SNCT,
  P_CNCT,
  P_SMWB,
  P_CMWB,
  P_COUNT
};

static const char *const param_name[P_COUNT] = { "server_no_context_takeover",
                                                 "client_no_context_takeover",
                                                 "server_max_window_bits",
                                                 "client_max_window_bits" };

/** One parameter of a permessage-deflate element, judged. */
static bool
apply_param (struct ws_pmd_params *p, bool seen[P_COUNT], const char *name,
             size_t name_len, bool has_value, const char *value,
             size_t value_len, bool as_answer)
{
  int i;
  int bits;

  for (i = 0; i < P_COUNT; i++)
    if (name_is (name, name_len, param_name[i]))
      break;
  if ((P_COUNT == i) || seen[i])
    return false; /* unknown or repeated */
  seen[i] = true;
  switch (i)
  {
  case P_SNCT:
  case P_CNCT:
    if (has_value)
      return false;
    if (P_SNCT == i)
      p->server_no_context_takeover = true;
    else
      p->client_no_context_takeover = true;
    return true;
  case P_SMWB:
    if (! has_value)
      return false;
    bits = parse_bits (value, value_len);
    if (bits < 0)
      return false;
    p->server_max_window_bits = bits;
    return true;
  default:
    if (! has_value)
    {
      /* Only an offer may leave the value to the server. */
      if (as_answer)
        return false;
      p->client_max_window_bits = -1;
      return true;
    }
    bits = parse_bits (value, value_len);
    if (bits < 0)
      return false;
    p->client_max_window_bits = bits;
    return true;
  }
}

bool
ws_pmd_walk (const char *header, bool as_answer, ws_pmd_visitor visit,
             void *cls, unsigned *others)
{
  const char *s = header;

  if (NULL != others)
    *others = 0;
  for (;;)
  {
    const char *name;
    size_t name_len;
    bool is_pmd;
    bool valid = true;
    bool seen[P_COUNT] = { false, false, false, false };
    struct ws_pmd_params p;

    s = skip_ows (s);
    if ('\0' == *s)
      return true;
    if (',' == *s)
    {
      s++; /* an empty element (RFC 7230 section 7) */
      continue;
    }
    name = s;
    while (is_tchar ((unsigned char) *s))
      s++;
    name_len = (size_t) (s - name);
    if (0 == name_len)
      return false;
    is_pmd = name_is (name, name_len, "permessage-deflate");
    memset (&p, 0, sizeof (p));
    s = skip_ows (s);
    while (';' == *s)
    {
      const char *pname;
      size_t pname_len;
      bool has_value = false;
      bool value_token = true;
      char value[VALUE_MAX];
      size_t value_len = 0;

      s = skip_ows (s + 1);
      pname = s;
      while (is_tchar ((unsigned char) *s))
        s++;
      pname_len = (size_t) (s - pname);
      if (0 == pname_len)
        return false;
      s = skip_ows (s);
      if ('=' == *s)
      {
        has_value = true;
        s = skip_ows (s + 1);
        if ('"' == *s)
        {
          s++;
          for (;;)
          {
            unsigned char c = (unsigned char) *s;
            if ('"' == c)
              break;
            if ('\\' == c)
            {
              s++;
              c = (unsigned char) *s;
              /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
              if (! (('\t' == c) || ((c >= 0x20) && (0x7F != c))))
                return false;
            }
            else if (! (('\t' == c) || ((c >= 0x20) && (0x7F != c))))
              return false; /* also the end of the string */
            if (! is_tchar (c))
              value_token = false;
            if (value_len < VALUE_MAX)
              value[value_len] = (char) c;
            value_len++;
            s++;
          }
          s++; /* the closing quote */
        }
        else
        {
          while (is_tchar ((unsigned char) *s))
          {
            if (value_len < VALUE_MAX)
              value[value_len] = *s;
            value_len++;
            s++;
          }
          if (0 == value_len)
            return false;
        }
        s = skip_ows (s);
      }
      if (is_pmd && valid)
      {
        /* A quoted value must be a token once unescaped (RFC 6455
           section 9.1); longer values than any valid one are invalid. */
        if (has_value
            && ((! value_token) || (0 == value_len) || (value_len > VALUE_MAX)))
          valid = false;
        else
          valid = apply_param (&p, seen, pname, pname_len, has_value, value,
                               value_len, as_answer);
      }
    }
    if ((',' != *s) && ('\0' != *s))
      return false;
    if (! is_pmd)
    {
      if (NULL != others)
        (*others)++;
    }
    else if ((NULL != visit) && ! visit (cls, &p, valid))
      return true;
  }
}

/** Collects the single element of an answer. */
struct answer_ctx
{
  struct ws_pmd_params p;
  unsigned count;
  bool valid;
};

static bool
answer_visit (void *cls, const struct ws_pmd_params *p, bool valid)
{
  struct answer_ctx *a = cls;

  a->count++;
  a->p = *p;
  a->valid = valid;
  return true;
}

bool
ws_pmd_parse_answer (const char *header, struct ws_pmd_params *out)
{
  struct answer_ctx a;
  unsigned others;

  memset (&a, 0, sizeof (a));
  if ((NULL == header)
      || ! ws_pmd_walk (header, true, answer_visit, &a, &others))
    return false;
  if ((1 != a.count) || (0 != others) || ! a.valid)
    return false;
  *out = a.p;
  return true;
}

/**
 * Writes "permessage-deflate" and the parameters of @a p into @a out.
 * @return false when @a out_size is too small
 */
static bool
write_params (const struct ws_pmd_params *p, char *out, size_t out_size)
{
  char smwb[48] = "";
  char cmwb[48] = "";
  int n;

  if (p->server_max_window_bits > 0)
    snprintf (smwb, sizeof (smwb), "; server_max_window_bits=%d",
              p->server_max_window_bits);
  if (p->client_max_window_bits > 0)
    snprintf (cmwb, sizeof (cmwb), "; client_max_window_bits=%d",
              p->client_max_window_bits);
  else if (p->client_max_window_bits < 0)
    snprintf (cmwb, sizeof (cmwb), "; client_max_window_bits");
  n = snprintf (
    out, out_size, "permessage-deflate%s%s%s%s",
    p->server_no_context_takeover ? "; server_no_context_takeover" : "",
    p->client_no_context_takeover ? "; client_no_context_takeover" : "", smwb,
    cmwb);
  return (n > 0) && ((size_t) n < out_size);
}

#define KNOWN_DEFLATE_FLAGS                                                    \
  (MHD_WEBSOCKET_DEFLATE_FLAG_SERVER_NO_CONTEXT_TAKEOVER                       \
   | MHD_WEBSOCKET_DEFLATE_FLAG_CLIENT_NO_CONTEXT_TAKEOVER)

/** The server's choice among the offers. */
struct negotiate_ctx
{
  int flags;
  int server_bits;
  int client_bits;
  bool found;
  struct ws_pmd_params answer;
};

static bool
negotiate_visit (void *cls, const struct ws_pmd_params *offer, bool valid)
{
  struct negotiate_ctx *n = cls;
  struct ws_pmd_params *a = &n->answer;
  int bits;

  if (! valid)
    return true; /* declined; the next offer may do */
  memset (a, 0, sizeof (*a));
  /* The client may ask for either; the server may add either. */
  a->server_no_context_takeover =
    offer->server_no_context_takeover
    || (0
        != (n->flags & MHD_WEBSOCKET_DEFLATE_FLAG_SERVER_NO_CONTEXT_TAKEOVER));
  a->client_no_context_takeover =
    offer->client_no_context_takeover
    || (0
        != (n->flags & MHD_WEBSOCKET_DEFLATE_FLAG_CLIENT_NO_CONTEXT_TAKEOVER));
  /* The server's window: as asked or smaller; a smaller one may be
     announced unasked (RFC 7692 7.1.2.1), which spares the client's
     memory. */
  bits = n->server_bits;
  if ((0 != offer->server_max_window_bits)
      && (offer->server_max_window_bits < bits))
    bits = offer->server_max_window_bits;
  if ((0 != offer->server_max_window_bits) || (bits < WS_PMD_MAX_BITS))
    a->server_max_window_bits = bits;
  /* The client's window may only be limited when the offer allows it
     (7.1.2.2); an offer that does not cannot fit a smaller decompressor. */
  if (0 == offer->client_max_window_bits)
  {
    if (n->client_bits < WS_PMD_MAX_BITS)
      return true;
  }
  else
  {
    bits = n->client_bits;
    if ((offer->client_max_window_bits > 0)
        && (offer->client_max_window_bits < bits))
      bits = offer->client_max_window_bits;
    if (bits < WS_PMD_MAX_BITS)
      a->client_max_window_bits = bits;
  }
  n->found = true;
  return false;
}

/** 0 means 15; otherwise 8-15. */
static bool
bits_setting (int *bits)
{
  if (0 == *bits)
    *bits = WS_PMD_MAX_BITS;
  return (*bits >= WS_PMD_MIN_BITS) && (*bits <= WS_PMD_MAX_BITS);
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_deflate_negotiate (const char *offer_header, int flags,
                                 int server_max_window_bits,
                                 int client_max_window_bits, char *answer,
                                 size_t answer_size)
{
  struct negotiate_ctx n;

  if ((NULL == answer) || (0 == answer_size))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  answer[0] = '\0';
  memset (&n, 0, sizeof (n));
  n.flags = flags;
  n.server_bits = server_max_window_bits;
  n.client_bits = client_max_window_bits;
  if ((0 != (flags & ~KNOWN_DEFLATE_FLAGS)) || ! bits_setting (&n.server_bits)
      || ! bits_setting (&n.client_bits))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  if (NULL == offer_header)
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
  /* A malformed value is declined whole, before any offer is taken. */
  if (! ws_pmd_walk (offer_header, false, NULL, NULL, NULL))
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
  (void) ws_pmd_walk (offer_header, false, negotiate_visit, &n, NULL);
  if (! n.found)
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
  if (! write_params (&n.answer, answer, answer_size))
  {
    answer[0] = '\0';
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  }
  return MHD_WEBSOCKET_STATUS_OK;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_deflate_offer (int flags, int server_max_window_bits,
                             int client_max_window_bits, char *offer,
                             size_t offer_size)
{
  struct ws_pmd_params p;

  if ((NULL == offer) || (0 == offer_size))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  offer[0] = '\0';
  if ((0 != (flags & ~KNOWN_DEFLATE_FLAGS))
      || ((0 != server_max_window_bits)
          && ((server_max_window_bits < WS_PMD_MIN_BITS)
              || (server_max_window_bits > WS_PMD_MAX_BITS)))
      || ((0 != client_max_window_bits)
          && ((client_max_window_bits < WS_PMD_MIN_BITS)
              || (client_max_window_bits > WS_PMD_MAX_BITS))))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  memset (&p, 0, sizeof (p));
  p.server_no_context_takeover =
    0 != (flags & MHD_WEBSOCKET_DEFLATE_FLAG_SERVER_NO_CONTEXT_TAKEOVER);
  p.client_no_context_takeover =
    0 != (flags & MHD_WEBSOCKET_DEFLATE_FLAG_CLIENT_NO_CONTEXT_TAKEOVER);
  p.server_max_window_bits = server_max_window_bits;
  p.client_max_window_bits =
    (0 != client_max_window_bits) ? client_max_window_bits : -1;
  if (! write_params (&p, offer, offer_size))
  {
    offer[0] = '\0';
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  }
  return MHD_WEBSOCKET_STATUS_OK;
}

/** Does the answer fit one of the offers? */
struct check_ctx
{
  struct ws_pmd_params answer;
  unsigned offers;
  bool fits;
};

static bool
check_visit (void *cls, const struct ws_pmd_params *o, bool valid)
{
  struct check_ctx *c = cls;
  const struct ws_pmd_params *a = &c->answer;

  if (! valid)
    return true;
  c->offers++;
  /* Asked for and not granted: the answer is not to this offer. */
  if (o->server_no_context_takeover && ! a->server_no_context_takeover)
    return true;
  if ((0 != o->server_max_window_bits)
      && ((0 == a->server_max_window_bits)
          || (a->server_max_window_bits > o->server_max_window_bits)))
    return true;
  /* A limit on the client's window needs the client's leave, and may not
     exceed what it promised. */
  if (0 != a->client_max_window_bits)
  {
    if (0 == o->client_max_window_bits)
      return true;
    if ((o->client_max_window_bits > 0)
        && (a->client_max_window_bits > o->client_max_window_bits))
      return true;
  }
  c->fits = true;
  return false;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_deflate_check_answer (const char *offer, const char *answer)
{
  struct check_ctx c;

  memset (&c, 0, sizeof (c));
  if ((NULL == offer) || ! ws_pmd_walk (offer, false, NULL, NULL, NULL))
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  if ((NULL == answer) || ('\0' == *skip_ows (answer)))
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
  if (! ws_pmd_parse_answer (answer, &c.answer))
    return MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
  (void) ws_pmd_walk (offer, false, check_visit, &c, NULL);
  if (0 == c.offers)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR; /* nothing was offered */
  return c.fits ? MHD_WEBSOCKET_STATUS_OK : MHD_WEBSOCKET_STATUS_PROTOCOL_ERROR;
}
