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
 * Looks for @a word in an RFC 7230 comma-separated list of tokens, the
 * way the original library scanned it, since programs see the answer:
 * left to right, the answer is OK as soon as a complete element (from
 * its first to its last token character) equals @a word ignoring case,
 * and what follows is not looked at.  Spaces and tabs are skipped
 * anywhere, so an element of several words is merely no match.  Any
 * other character that is not a token character (with @a allow_slash,
 * `/` is one, for "protocol/version" in the Upgrade header) makes the
 * header unacceptable if it comes before a match.
 */
static enum MHD_WEBSOCKET_STATUS
list_contains (const char *list, const char *word, bool allow_slash)
{
  const char *first = NULL; /* the element's first token character */
  const char *end = NULL;   /* after its last token character */
  const char *p;

  if (NULL == list)
    return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
  for (p = list;; p++)
  {
    char c = *p;

    if (is_tchar (c) || (allow_slash && ('/' == c)))
    {
      if (NULL == first)
        first = p;
      end = p + 1;
    }
    else if (is_space (c))
      continue;
    else if ((',' == c) || ('\0' == c))
    {
      if ((NULL != first)
          && equals_ignore_case (first, (size_t) (end - first), word))
        return MHD_WEBSOCKET_STATUS_OK;
      if ('\0' == c)
        return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
      first = NULL;
      end = NULL;
    }
    else
      return MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER;
  }
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

/* Each byte's base64 value plus one; 0 for a byte that is no digit
   (the entries not written, 0x80 and up, are 0 too). */
/* clang-format off */
static const uint8_t base64_plus1[256] = {
  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
  /* ' ' .. '/': '+' and '/' */
  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, 63,  0,  0,  0, 64,
  /* '0' .. '?' */
  53, 54, 55, 56, 57, 58, 59, 60, 61, 62,  0,  0,  0,  0,  0,  0,
  /* '@' .. 'O' */
  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15,
  /* 'P' .. '_' */
  16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,  0,  0,  0,  0,  0,
  /* '`' .. 'o' */
  0, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41,
  /* 'p' .. DEL */
  42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,  0,  0,  0,  0,  0};
/* clang-format on */

/**
 * RFC 6455 section 4.2.1 item 5: the key must be base64 of 16 bytes,
 * that is 22 digits and "==", the last digit carrying 4 unused bits that
 * canonical base64 leaves zero.
 */
static bool
is_valid_key (const char *key, size_t len)
{
  size_t i;
  bool bad = false;

  if ((ACCEPT_KEY_LEN != len) || ('=' != key[22]) || ('=' != key[23]))
    return false;
  /* No branch per digit: the key is checked on every handshake. */
  for (i = 0; i < 21; i++)
    bad |= (0 == base64_plus1[(unsigned char) key[i]]);
  /* The last digit's low 4 bits are unused and must be 0: value + 1
     is then 1 modulo 16. */
  return ! bad && (1 == (base64_plus1[(unsigned char) key[21]] & 0x0F));
}

_MHD_EXTERN enum MHD_WEBSOCKET_STATUS
MHD_websocket_create_accept_header (const char *sec_websocket_key,
                                    char *sec_websocket_accept)
{
  unsigned char digest[SHA_DIGEST_LENGTH];
  unsigned char text[ACCEPT_KEY_LEN + sizeof (ws_guid) - 1];
  SHA_CTX sha;
  size_t len;

  if (NULL == sec_websocket_accept)
    return MHD_WEBSOCKET_STATUS_PARAMETER_ERROR;
  /* As in the original, every failure leaves an empty string behind. */
  sec_websocket_accept[0] = '\0';
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

  /* Key and GUID in one buffer: one SHA1_Update call instead of two. */
  memcpy (text, sec_websocket_key, ACCEPT_KEY_LEN);
  memcpy (text + ACCEPT_KEY_LEN, ws_guid, sizeof (ws_guid) - 1);
  if ((1 != SHA1_Init (&sha)) || (1 != SHA1_Update (&sha, text, sizeof (text)))
      || (1 != SHA1_Final (digest, &sha)))
    return MHD_WEBSOCKET_STATUS_MEMORY_ERROR;
  /* 28 digits and a NUL: exactly the caller's 29 bytes. */
  (void) EVP_EncodeBlock ((unsigned char *) sec_websocket_accept, digest,
                          SHA_DIGEST_LENGTH);
  return MHD_WEBSOCKET_STATUS_OK;
}
