/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file fuzz_handshake.c
 * @brief libFuzzer harness for the handshake helpers.  The input, cut at
 *        its first NUL, is given to all four header checks and to
 *        MHD_websocket_create_accept_header; results are compared with
 *        simple reference implementations of the contract's rules.
 */
#include "fuzz_common.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int
is_digit (char c)
{
  return c >= '0' && c <= '9';
}

/* "HTTP/" digits "." digits with (major, minor) >= (1, 1). */
static int
ref_http_version_ok (const char *s)
{
  const char *maj;
  const char *min;
  size_t majlen = 0;
  size_t minlen = 0;

  if (0 != strncmp (s, "HTTP/", 5))
    return 0;
  maj = s + 5;
  while (is_digit (maj[majlen]))
    majlen++;
  if ((0 == majlen) || ('.' != maj[majlen]))
    return 0;
  min = maj + majlen + 1;
  while (is_digit (min[minlen]))
    minlen++;
  if ((0 == minlen) || ('\0' != min[minlen]))
    return 0;
  while (majlen > 0 && '0' == *maj)
  {
    maj++;
    majlen--;
  }
  while (minlen > 0 && '0' == *min)
  {
    min++;
    minlen--;
  }
  if (0 == majlen)
    return 0;
  if ((majlen > 1) || (*maj > '1'))
    return 1;
  return minlen > 0;
}

static int
is_tchar (unsigned char c)
{
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
      || (c >= 'A' && c <= 'Z'))
    return 1;
  return NULL != strchr ("!#$%&'*+-.^_`|~", c) && c != 0;
}

static int
ci_equal (const char *a, size_t alen, const char *b)
{
  size_t i;
  if (alen != strlen (b))
    return 0;
  for (i = 0; i < alen; i++)
  {
    char x = a[i];
    if (x >= 'A' && x <= 'Z')
      x = (char) (x - 'A' + 'a');
    if (x != b[i])
      return 0;
  }
  return 1;
}

/* The contract's list rule (section 6), element by element: 1 when an
   element equal to want (ignoring case and the spaces and tabs around
   it) comes before any character that is neither a token character,
   '/' (allow_slash), space, tab nor comma; 0 otherwise. */
static int
ref_list (const char *s, int allow_slash, const char *want)
{
  const char *p = s;
  for (;;)
  {
    const char *e = strchr (p, ',');
    size_t len = e ? (size_t) (e - p) : strlen (p);
    size_t i;
    for (i = 0; i < len; i++)
      if (! is_tchar ((unsigned char) p[i]) && p[i] != ' ' && p[i] != '\t'
          && ! (allow_slash && p[i] == '/'))
        return 0; /* before this element could match */
    while (len > 0 && (*p == ' ' || *p == '\t'))
    {
      p++;
      len--;
    }
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
      len--;
    if (ci_equal (p, len, want))
      return 1;
    if (NULL == e)
      return 0;
    p = e + 1;
  }
}

static int
is_b64 (char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
         || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = malloc (size + 1);
  char *out;
  int r;
  const char *t;
  size_t tlen;

  FZ_CHECK (NULL != s);
  memcpy (s, data, size);
  s[size] = '\0';

  r = MHD_websocket_check_version_header (s);
  FZ_CHECK ((0 == strcmp (s, "13"))
              ? MHD_WEBSOCKET_STATUS_OK == r
              : MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER == r);

  r = MHD_websocket_check_http_version (s);
  FZ_CHECK (ref_http_version_ok (s)
              ? MHD_WEBSOCKET_STATUS_OK == r
              : MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER == r);

  r = MHD_websocket_check_connection_header (s);
  FZ_CHECK (ref_list (s, 0, "upgrade")
              ? MHD_WEBSOCKET_STATUS_OK == r
              : MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER == r);

  r = MHD_websocket_check_upgrade_header (s);
  FZ_CHECK (ref_list (s, 1, "websocket")
              ? MHD_WEBSOCKET_STATUS_OK == r
              : MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER == r);

  /* Exactly 29 bytes, so ASan sees any write past the contract's size. */
  out = malloc (29);
  FZ_CHECK (NULL != out);
  r = MHD_websocket_create_accept_header (s, out);
  FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == r
            || MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER == r);
  /* A rejected key leaves an empty string, as in the original. */
  if (MHD_WEBSOCKET_STATUS_OK != r)
    FZ_CHECK ('\0' == out[0]);
  t = s;
  while (*t == ' ' || *t == '\t')
    t++;
  tlen = strlen (t);
  while (tlen > 0 && (t[tlen - 1] == ' ' || t[tlen - 1] == '\t'))
    tlen--;
  {
    int canonical = (24 == tlen);
    int shape = (24 == tlen);
    size_t i;
    for (i = 0; i < 22 && shape; i++)
      if (! is_b64 (t[i]))
        shape = canonical = 0;
    if (shape && (t[22] != '=' || t[23] != '='))
      shape = canonical = 0;
    /* The last character carries 2 data bits; the other 4 must be 0. */
    if (canonical && NULL == strchr ("AQgw", t[21]))
      canonical = 0;
    if (canonical)
      FZ_CHECK (MHD_WEBSOCKET_STATUS_OK == r);
    if (MHD_WEBSOCKET_STATUS_OK == r)
    {
      unsigned char md[SHA_DIGEST_LENGTH];
      unsigned char want[29 + 3];
      unsigned char *cat = malloc (tlen + sizeof (guid));
      FZ_CHECK (NULL != cat);
      FZ_CHECK (shape);
      memcpy (cat, t, tlen);
      memcpy (cat + tlen, guid, sizeof (guid) - 1);
      FZ_CHECK (1
                == EVP_Digest (cat, tlen + sizeof (guid) - 1, md, NULL,
                               EVP_sha1 (), NULL));
      FZ_CHECK (28 == EVP_EncodeBlock (want, md, SHA_DIGEST_LENGTH));
      FZ_CHECK (0 == memcmp (want, out, 29));
      free (cat);
    }
  }
  FZ_CHECK (MHD_WEBSOCKET_STATUS_PARAMETER_ERROR
            == MHD_websocket_create_accept_header (s, NULL));
  free (out);
  free (s);
  return 0;
}
