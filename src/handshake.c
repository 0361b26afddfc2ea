/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file handshake.c
 * @brief Opening handshake (RFC 6455 section 4.2): request header checks
 *        and the Sec-WebSocket-Accept value.
 */
/* SHA1_Init and friends: the one-shot EVP interface of OpenSSL 3 costs
   several times more for a 60-byte input. */
#define OPENSSL_API_COMPAT 0x10100000L

#include "internal.h"

#include <string.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

/** RFC 6455 section 1.3. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#define ACCEPT_KEY_LEN 24   /* base64 of 16 bytes */
#define ACCEPT_VALUE_LEN 28 /* base64 of a 20-byte SHA-1 */

static bool
is_digit (char c)
{
  return c >= '0' && c <= '9';
}

static bool
is_space (char c)
{
  return ' ' == c || '\t' == c;
}

/** RFC 7230 section 3.2.6 tchar. */
static bool
is_tchar (char c)
{
  if (is_digit (c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
    return true;
  return NULL != strchr ("!#$%&'*+-.^_`|~", c) && '\0' != c;
}

static char
to_lower (char c)
{
  return (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
}

/** Compares [s, s+len) with a lower-case word, ignoring case. */
static bool
equals_ignore_case (const char *s, size_t len, const char *word)
{
  size_t i;
  if (strlen (word) != len)
    return false;
  for (i = 0; i < len; i++)
    if (to_lower (s[i]) != word[i])
      return false;
  return true;
}

/**
 * Reads a run of digits starting at @a s.
 * @param[out] value 0, 1 or 2, where 2 stands for "2 or more"; leading
 *             zeros do not count, so any length is handled without
 *             overflow
 * @return the number of digits read
 */
static size_t
read_small_number (const char *s, unsigned *value)
{
  size_t n = 0;
  unsigned v = 0;
  for (; is_digit (s[n]); n++)
  {
    v = v * 10 + (unsigned) (s[n] - '0');
    if (v > 2)
      v = 2;
  }
  *value = v;
  return n;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_check_http_version (const char *http_version)
{
  unsigned major;
  unsigned minor;
  size_t n;

  if ((NULL == http_version) || (0 != strncmp (http_version, "HTTP/", 5)))
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
  http_version += 5;
  n = read_small_number (http_version, &major);
  if ((0 == n) || ('.' != http_version[n]))
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
  http_version += n + 1;
  n = read_small_number (http_version, &minor);
  if ((0 == n) || ('\0' != http_version[n]))
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
  /* RFC 6455 section 4.1: at least HTTP/1.1. */
  if ((major >= 2) || ((1 == major) && (minor >= 1)))
    return MHD_WEBSOCKET_STATUS_OK;
  return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
}

/**
 * Looks for @a word in an RFC 7230 comma-separated list (section 7:
 * elements may be empty and are surrounded by optional spaces or tabs).
 * Each element must be a token, or, with @a allow_slash, a protocol
 * `token/token` (RFC 7230 section 6.7); anything else in the list makes
 * the whole header unacceptable.
 */
static enum MHD_WEBSOCKET_STATUS
list_contains (const char *list, const char *word, bool allow_slash)
{
  bool found = false;

  if (NULL == list)
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
  for (;;)
  {
    const char *start;
    size_t len;
    size_t first_len = 0;

    while (is_space (*list))
      list++;
    start = list;
    while (is_tchar (*list))
      list++;
    len = (size_t) (list - start);
    if (allow_slash && (0 != len) && ('/' == *list))
    {
      first_len = len;
      list++;
      while (is_tchar (*list))
        list++;
      len = (size_t) (list - start);
      if (len == first_len + 1)
        return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
    }
    /* A protocol with a version ("websocket/13") is not "websocket". */
    if ((0 == first_len) && equals_ignore_case (start, len, word))
      found = true;
    while (is_space (*list))
      list++;
    if ('\0' == *list)
      break;
    if (',' != *list)
      return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
    list++;
  }
  return found ? MHD_WEBSOCKET_STATUS_OK
               : MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_check_connection_header (const char *connection_header)
{
  return list_contains (connection_header, "upgrade", false);
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_check_upgrade_header (const char *upgrade_header)
{
  return list_contains (upgrade_header, "websocket", true);
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_check_version_header (const char *version_header)
{
  if ((NULL == version_header) || (0 != strcmp (version_header, "13")))
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
  return MHD_WEBSOCKET_STATUS_OK;
}

/** The value of a base64 digit, or -1. */
static int
base64_value (char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (is_digit (c))
    return c - '0' + 52;
  if ('+' == c)
    return 62;
  if ('/' == c)
    return 63;
  return -1;
}

/**
 * RFC 6455 section 4.2.1 item 5: the key must be base64 of 16 bytes,
 * that is 22 digits and "==", the last digit carrying 4 unused bits that
 * canonical base64 leaves zero.
 */
static bool
is_valid_key (const char *key, size_t len)
{
  size_t i;
  int last;

  if ((ACCEPT_KEY_LEN != len) || ('=' != key[22]) || ('=' != key[23]))
    return false;
  for (i = 0; i < 21; i++)
    if (base64_value (key[i]) < 0)
      return false;
  last = base64_value (key[21]);
  return (last >= 0) && (0 == (last & 0x0F));
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_create_accept_header (const char *sec_websocket_key,
                                    char *sec_websocket_accept)
{
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA_CTX sha;
  size_t len;

  if (NULL == sec_websocket_accept)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  if (NULL == sec_websocket_key)
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;

  /* Header values reach us with optional whitespace (RFC 7230 3.2.4). */
  while (is_space (*sec_websocket_key))
    sec_websocket_key++;
  len = strlen (sec_websocket_key);
  while ((0 != len) && is_space (sec_websocket_key[len - 1]))
    len--;
  if (! is_valid_key (sec_websocket_key, len))
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;

  if ((1 != SHA1_Init (&sha))
      || (1 != SHA1_Update (&sha, sec_websocket_key, len))
      || (1 != SHA1_Update (&sha, ws_guid, sizeof (ws_guid) - 1))
      || (1 != SHA1_Final (digest, &sha)))
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  /* EVP_EncodeBlock writes the 28 digits and a NUL. */
  if (ACCEPT_VALUE_LEN
      != EVP_EncodeBlock ((unsigned char *) sec_websocket_accept, digest,
                          SHA_DIGEST_LENGTH))
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  return MHD_WEBSOCKET_STATUS_OK;
}
