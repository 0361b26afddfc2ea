/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_handshake.c
 * @brief Tests of the handshake helpers (contract section 2): the four
 *        header checks and the Sec-WebSocket-Accept computation, the
 *        latter compared with OpenSSL's SHA-1 and base64.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <openssl/evp.h>
#include "microhttpd_ws.h"

#define OK MHD_WEBSOCKET_STATUS_OK
#define NO_HS MHD_WEBSOCKET_STATUS_NO_WEBSOCKET_HANDSHAKE_HEADER

typedef enum MHD_WEBSOCKET_STATUS (*header_check) (const char *value);

struct hcase
{
  const char *in;
  int want;
};

#define NCASES(a) (sizeof (a) / sizeof ((a)[0]))


/* ------------------------------------------------------------ helpers */

/* Printable form of a header value for failure messages; a few rotating
   buffers so that one message may show several. */
static const char *
esc (const char *s)
{
  static char bufs[4][400];
  static unsigned which;
  char *b = bufs[which++ % 4];
  size_t o = 0;

  if (NULL == s)
    return "(NULL)";
  b[o++] = '"';
  for (; '\0' != *s && o + 8 < sizeof (bufs[0]); s++)
  {
    unsigned char c = (unsigned char) *s;
    if (c >= 0x20 && c < 0x7F && '\\' != c && '"' != c)
      b[o++] = (char) c;
    else
      o += (size_t) snprintf (b + o, sizeof (bufs[0]) - o, "\\x%02x", c);
  }
  if ('\0' != *s)
    o += (size_t) snprintf (b + o, sizeof (bufs[0]) - o, "...");
  b[o++] = '"';
  b[o] = '\0';
  return b;
}

/* Runs every case and reports all that fail at once, so that one broken
   rule does not hide the others. */
static void
run_cases (header_check fn, const char *fname, const struct hcase *c, size_t n)
{
  char msg[4096];
  size_t o = 0;
  size_t fails = 0;
  size_t i;

  msg[0] = '\0';
  for (i = 0; i < n; i++)
  {
    int got = fn (c[i].in);
    if (got == c[i].want)
      continue;
    fails++;
    if (o + 200 < sizeof (msg))
      o += (size_t) snprintf (msg + o, sizeof (msg) - o,
                              "\n  %s(%s) = %d, expected %d", fname,
                              esc (c[i].in), got, c[i].want);
  }
  ck_assert_msg (0 == fails, "%zu of %zu cases wrong:%s", fails, n, msg);
}

#define RUN(fn, cases) run_cases (fn, #fn, cases, NCASES (cases))

/* RFC 7230 tchar. */
static int
is_tchar (unsigned c)
{
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
      || (c >= 'A' && c <= 'Z'))
    return 1;
  return NULL != strchr ("!#$%&'*+-.^_`|~", (int) c) && '\0' != c;
}

/* A malloc'd string of @a n copies of @a c between @a pre and @a post. */
static char *
repeat (const char *pre, char c, size_t n, const char *post)
{
  size_t lp = strlen (pre);
  size_t lq = strlen (post);
  char *s = malloc (lp + n + lq + 1);
  ck_assert_ptr_nonnull (s);
  memcpy (s, pre, lp);
  memset (s + lp, c, n);
  memcpy (s + lp + n, post, lq + 1);
  return s;
}


/* ------------------------------------------------------------ version */

START_TEST (test_http_version_1_1_and_above_accepted)
{
  static const struct hcase c[] = {
    { "HTTP/1.1", OK },  { "HTTP/1.2", OK }, { "HTTP/1.9", OK },
    { "HTTP/2.0", OK },  { "HTTP/3.0", OK }, { "HTTP/10.0", OK },
    { "HTTP/9.99", OK }, { "HTTP/2.1", OK }, { "HTTP/1.99", OK },
  };
  RUN (MHD_websocket_check_http_version, c);
}
END_TEST


START_TEST (test_http_version_minor_is_an_integer_not_a_fraction)
{
  /* 1.10 is minor version ten (above 1.1), and 1.0001 is minor one. */
  static const struct hcase c[] = {
    { "HTTP/1.10", OK },  { "HTTP/1.0001", OK },    { "HTTP/1.01", OK },
    { "HTTP/1.100", OK }, { "HTTP/1.0000", NO_HS },
  };
  RUN (MHD_websocket_check_http_version, c);
}
END_TEST


START_TEST (test_http_version_leading_zeros_do_not_change_value)
{
  static const struct hcase c[] = {
    { "HTTP/01.1", OK },     { "HTTP/001.001", OK },  { "HTTP/00001.1", OK },
    { "HTTP/02.0", OK },     { "HTTP/01.0", NO_HS },  { "HTTP/1.00", NO_HS },
    { "HTTP/00.9", NO_HS },  { "HTTP/000.1", NO_HS }, { "HTTP/0.00", NO_HS },
    { "HTTP/00.00", NO_HS },
  };
  RUN (MHD_websocket_check_http_version, c);
}
END_TEST


START_TEST (test_http_version_below_1_1_rejected)
{
  static const struct hcase c[] = {
    { "HTTP/1.0", NO_HS },  { "HTTP/0.9", NO_HS },  { "HTTP/0.0", NO_HS },
    { "HTTP/0.1", NO_HS },  { "HTTP/0.99", NO_HS }, { "HTTP/0.100", NO_HS },
    { "HTTP/0.00", NO_HS }, { "HTTP/0.11", NO_HS },
  };
  RUN (MHD_websocket_check_http_version, c);
}
END_TEST


START_TEST (test_http_version_syntax_is_strict)
{
  /* Exactly "HTTP/" digits "." digits: case, spaces, signs, missing or
     extra parts all make it unacceptable. */
  static const struct hcase c[] = {
    { "http/1.1", NO_HS },
    { "Http/1.1", NO_HS },
    { "HTTP / 1.1", NO_HS },
    { "HTTP/1.1 ", NO_HS },
    { " HTTP/1.1", NO_HS },
    { "HTTP/ 1.1", NO_HS },
    { "HTTP/1 .1", NO_HS },
    { "HTTP/1. 1", NO_HS },
    { "HTTP/1.1\t", NO_HS },
    { "HTTP/1.1\r\n", NO_HS },
    { "HTTP/1", NO_HS },
    { "HTTP/2", NO_HS },
    { "HTTP/1.", NO_HS },
    { "HTTP/.1", NO_HS },
    { "HTTP/.", NO_HS },
    { "HTTP/", NO_HS },
    { "HTTP", NO_HS },
    { "HTTP/1.1.1", NO_HS },
    { "HTTP/1..1", NO_HS },
    { "HTTP/1.x", NO_HS },
    { "HTTP/x.1", NO_HS },
    { "HTTP/1.1a", NO_HS },
    { "HTTP/1,1", NO_HS },
    { "HTTP/+1.1", NO_HS },
    { "HTTP/-1.1", NO_HS },
    { "HTTP/1.+1", NO_HS },
    { "HTTP/1.-1", NO_HS },
    { "HTTP/0x1.1", NO_HS },
    { "HTTP/1e1.0", NO_HS },
    { "HTTP//1.1", NO_HS },
    { "HTTPS/1.1", NO_HS },
    { "xHTTP/1.1", NO_HS },
    { "HTTP/\xef\xbc\x91.1", NO_HS }, /* FULLWIDTH DIGIT ONE */
    { "HTTP/1.1\x80", NO_HS },
    { "", NO_HS },
  };
  RUN (MHD_websocket_check_http_version, c);
}
END_TEST


START_TEST (test_http_version_null_rejected)
{
  ck_assert_int_eq (MHD_websocket_check_http_version (NULL), NO_HS);
}
END_TEST


START_TEST (test_http_version_long_digit_strings_do_not_overflow)
{
  /* The value is compared, not parsed into a machine integer that could
     wrap: 2^64 wraps to 0 and 2^64 + 1 to 1 in 64-bit arithmetic. */
  static const struct hcase c[] = {
    { "HTTP/18446744073709551616.0", OK },
    { "HTTP/18446744073709551617.0", OK },
    { "HTTP/18446744073709551616.1", OK },
    { "HTTP/4294967296.0", OK },
    { "HTTP/4294967297.0", OK },
    { "HTTP/1.18446744073709551616", OK },
    { "HTTP/1.4294967296", OK },
    { "HTTP/0.18446744073709551617", NO_HS },
    { "HTTP/0.4294967297", NO_HS },
    { "HTTP/1.18446744073709551616000000000000", OK },
  };
  struct hcase big[7];
  size_t i;

  RUN (MHD_websocket_check_http_version, c);
  big[0].in = repeat ("HTTP/1.", '0', 100, "1");
  big[0].want = OK;
  big[1].in = repeat ("HTTP/1.", '0', 100, "");
  big[1].want = NO_HS;
  big[2].in = repeat ("HTTP/0.", '9', 100, "");
  big[2].want = NO_HS;
  big[3].in = repeat ("HTTP/", '9', 50, ".0");
  big[3].want = OK;
  big[4].in = repeat ("HTTP/", '0', 100, "1.1");
  big[4].want = OK;
  big[5].in = repeat ("HTTP/", '0', 100, ".9");
  big[5].want = NO_HS;
  big[6].in = repeat ("HTTP/1.", '0', 10000, "2");
  big[6].want = OK;
  RUN (MHD_websocket_check_http_version, big);
  for (i = 0; i < NCASES (big); i++)
    free ((char *) big[i].in);
}
END_TEST


/* ------------------------------------------------------------ connection */

START_TEST (test_connection_upgrade_any_case_accepted)
{
  static const struct hcase c[] = {
    { "Upgrade", OK },
    { "upgrade", OK },
    { "UPGRADE", OK },
    { "uPgRaDe", OK },
  };
  RUN (MHD_websocket_check_connection_header, c);
}
END_TEST


START_TEST (test_connection_upgrade_among_other_tokens_accepted)
{
  static const struct hcase c[] = {
    { "keep-alive, Upgrade", OK },
    { "Upgrade,keep-alive", OK },
    { "keep-alive,  upgrade  , foo", OK },
    { "close, Upgrade", OK },
    { "a, b, c, d, e, f, g, upgrade", OK },
    { "!#$%&'*+-.^_`|~09azAZ, Upgrade", OK }, /* every tchar */
    { "Upgrade, Upgrade", OK },
  };
  RUN (MHD_websocket_check_connection_header, c);
}
END_TEST


START_TEST (test_connection_spaces_and_tabs_around_elements_ignored)
{
  static const struct hcase c[] = {
    { " \tUpgrade\t ", OK },
    { "\tUpgrade", OK },
    { "Upgrade ", OK },
    { "   Upgrade", OK },
    { "keep-alive\t,\tUpgrade", OK },
    { "keep-alive ,Upgrade ,close", OK },
  };
  RUN (MHD_websocket_check_connection_header, c);
}
END_TEST


START_TEST (test_connection_empty_list_elements_allowed_rfc7230)
{
  /* RFC 7230 section 7: a recipient accepts empty list elements. */
  static const struct hcase c[] = {
    { "keep-alive,,Upgrade", OK },
    { ",Upgrade", OK },
    { "Upgrade,", OK },
    { " , Upgrade , ", OK },
    { ",,Upgrade,,", OK },
    { "\t,\t,Upgrade", OK },
    { ",", NO_HS },
    { " , ", NO_HS },
    { ",,,", NO_HS },
  };
  RUN (MHD_websocket_check_connection_header, c);
}
END_TEST


START_TEST (test_connection_without_upgrade_element_rejected)
{
  static const struct hcase c[] = {
    { "keep-alive", NO_HS },
    { "close", NO_HS },
    { "", NO_HS },
    { " ", NO_HS },
    { "\t", NO_HS },
    { "Upgrades", NO_HS },
    { "xUpgrade", NO_HS },
    { "Upgrade2", NO_HS },
    { "Upgrade-", NO_HS },
    { "upgrade_", NO_HS },
    { "Upgrad", NO_HS },
    { "pgrade", NO_HS },
    { "keep-alive, Upgrades, xUpgrade", NO_HS },
  };
  RUN (MHD_websocket_check_connection_header, c);
}
END_TEST


START_TEST (test_connection_null_rejected)
{
  ck_assert_int_eq (MHD_websocket_check_connection_header (NULL), NO_HS);
}
END_TEST


START_TEST (test_connection_element_of_several_words_is_no_match)
{
  /* Spaces and tabs inside an element do not break the list (as in the
     original); the element simply is not "upgrade". */
  static const struct hcase c[] = {
    { "Upgrade or Downgrade", NO_HS },
    { "keep-alive, Upgrade now", NO_HS },
    { "Up grade", NO_HS },
    { "Up\tgrade", NO_HS },
    { "keep alive, Upgrade", OK },
    { "e x,Upgrade", OK },
    { "a \t b,\tUpgrade", OK },
    { "Upgrade, keep alive", OK },
  };
  RUN (MHD_websocket_check_connection_header, c);
}
END_TEST


START_TEST (test_connection_quoted_string_before_match_rejected)
{
  static const struct hcase c[] = {
    { "\"Upgrade\"", NO_HS },
    { "keep-alive, \"Upgrade\"", NO_HS },
    { "\"keep-alive\", Upgrade", NO_HS },
    /* After a match nothing is examined. */
    { "Upgrade, \"x\"", OK },
    { "Upgrade, \"\"", OK },
  };
  RUN (MHD_websocket_check_connection_header, c);
}
END_TEST


START_TEST (test_connection_whitespace_other_than_space_tab_rejected)
{
  /* Before the element is complete (at a comma or the end) CR, LF, VT
     and FF make the header unacceptable. */
  static const struct hcase c[] = {
    { "Upgrade\r\n", NO_HS },
    { "Upgrade\r", NO_HS },
    { "Upgrade\n", NO_HS },
    { "\r\nUpgrade", NO_HS },
    { "Up\x0bgrade", NO_HS },
    { "Upgrade\x0b", NO_HS },
    { "\x0bUpgrade", NO_HS },
    { "Upgrade\f", NO_HS },
    { "\fUpgrade", NO_HS },
    { "keep-alive,\r\n Upgrade", NO_HS }, /* obsolete line folding */
    { "keep-alive\n, Upgrade", NO_HS },
    /* The match came first: the rest is not examined. */
    { "Upgrade, keep-alive\r\n", OK },
  };
  RUN (MHD_websocket_check_connection_header, c);
}
END_TEST


START_TEST (test_connection_non_token_byte_before_match_rejected)
{
  /* A byte that is no tchar breaks the list when it comes before a
     complete "Upgrade" element... */
  static const struct hcase c[] = {
    { "Upgrade\xd1\x85", NO_HS }, /* CYRILLIC SMALL LETTER HA */
    { "\xd0\xa3pgrade", NO_HS },
    { "Upgrade\x80", NO_HS },
    { "Upgrade\x7f", NO_HS },
    { "Upgrade\x01", NO_HS },
    { "Upgrade;q=1", NO_HS },
    { "foo@bar, Upgrade", NO_HS },
    { "(comment), Upgrade", NO_HS },
    { "a/b, Upgrade", NO_HS },
    { "/,Upgrade", NO_HS },
    { "Upgrade/", NO_HS },
    { "a=b, Upgrade", NO_HS },
    { "[x], Upgrade", NO_HS },
    { "keep-alive\xff, Upgrade", NO_HS },
  };
  RUN (MHD_websocket_check_connection_header, c);
}
END_TEST


START_TEST (test_connection_rest_after_match_not_examined)
{
  /* ...and is not looked at after one (as in the original). */
  static const struct hcase c[] = {
    { "upgrade,/", OK },        { "upgrade,\x01", OK },
    { "Upgrade, foo@bar", OK }, { "Upgrade, (comment)", OK },
    { "Upgrade, a/b", OK },     { "Upgrade,;", OK },
    { "Upgrade, a\\b", OK },    { "Upgrade, <x>", OK },
    { "Upgrade,\xff\xfe", OK }, { "x, upgrade ,\r\n", OK },
  };
  RUN (MHD_websocket_check_connection_header, c);
}
END_TEST


START_TEST (test_connection_every_byte_inside_another_element)
{
  /* "a?b, Upgrade": fine exactly when ? is a tchar (one token), a comma
     (two tokens), or a space or tab (an element of two words, no match
     but no error).  "Upgrade, a?b": always fine, the match came first. */
  unsigned b;
  for (b = 1; b < 256; b++)
  {
    char s[16];
    int want = (is_tchar (b) || ',' == b || ' ' == b || '\t' == b) ? OK : NO_HS;
    snprintf (s, sizeof (s), "a%cb, Upgrade", (char) b);
    ck_assert_msg (MHD_websocket_check_connection_header (s) == want,
                   "%s: expected %d", esc (s), want);
    snprintf (s, sizeof (s), "Upgrade, a%cb", (char) b);
    ck_assert_msg (MHD_websocket_check_connection_header (s) == OK,
                   "%s: expected OK", esc (s));
  }
}
END_TEST


START_TEST (test_connection_every_byte_after_and_before_upgrade)
{
  /* "Upgrade?" and "?Upgrade" are fine only when ? is a list separator or
     optional white space. */
  unsigned b;
  for (b = 1; b < 256; b++)
  {
    char s[16];
    int want = (',' == b || ' ' == b || '\t' == b) ? OK : NO_HS;
    snprintf (s, sizeof (s), "Upgrade%c", (char) b);
    ck_assert_msg (MHD_websocket_check_connection_header (s) == want,
                   "%s: expected %d", esc (s), want);
    snprintf (s, sizeof (s), "%cUpgrade", (char) b);
    ck_assert_msg (MHD_websocket_check_connection_header (s) == want,
                   "%s: expected %d", esc (s), want);
  }
}
END_TEST


/* ------------------------------------------------------------ upgrade */

START_TEST (test_upgrade_websocket_any_case_accepted)
{
  static const struct hcase c[] = {
    { "websocket", OK },
    { "WebSocket", OK },
    { "WEBSOCKET", OK },
    { "wEbSoCkEt", OK },
  };
  RUN (MHD_websocket_check_upgrade_header, c);
}
END_TEST


START_TEST (test_upgrade_websocket_among_other_protocols_accepted)
{
  static const struct hcase c[] = {
    { "h2c, websocket", OK },
    { "websocket, h2c", OK },
    { "foo/1, websocket", OK },
    { "\twebsocket ", OK },
    { " websocket\t,\tfoo/2 ", OK },
    { "HTTP/2.0, SHTTP/1.3, IRC/6.9, RTA/x11, websocket", OK },
    { "!#$%&'*+-.^_`|~09azAZ/!#$%&'*+-.^_`|~09azAZ, websocket", OK },
  };
  RUN (MHD_websocket_check_upgrade_header, c);
}
END_TEST


START_TEST (test_upgrade_empty_list_elements_allowed_rfc7230)
{
  static const struct hcase c[] = {
    { ",websocket,", OK },
    { "h2c,,websocket", OK },
    { " , websocket", OK },
    { ",", NO_HS },
  };
  RUN (MHD_websocket_check_upgrade_header, c);
}
END_TEST


START_TEST (test_upgrade_without_websocket_element_rejected)
{
  /* A protocol with a version is not the bare "websocket". */
  static const struct hcase c[] = {
    { "websocket/13", NO_HS },
    { "websockets", NO_HS },
    { "h2c", NO_HS },
    { "web-socket", NO_HS },
    { "x/websocket", NO_HS },
    { "websocket/websocket", NO_HS },
    { "foo/1, websocket/13", NO_HS },
    { "", NO_HS },
    { " ", NO_HS },
  };
  RUN (MHD_websocket_check_upgrade_header, c);
}
END_TEST


START_TEST (test_upgrade_non_token_before_match_rejected)
{
  static const struct hcase c[] = {
    { "web socket", NO_HS },        { "\"websocket\"", NO_HS },
    { "websocket;x", NO_HS },       { "websocket\r\n", NO_HS },
    { "websocket\f", NO_HS },       { "web\x0bsocket", NO_HS },
    { "websocket\xc3\xa9", NO_HS }, { "a;b, websocket", NO_HS },
    { "\"x\", websocket", NO_HS },  { "x\x0b, websocket", NO_HS },
  };
  RUN (MHD_websocket_check_upgrade_header, c);
}
END_TEST


START_TEST (test_upgrade_rest_after_match_not_examined)
{
  static const struct hcase c[] = {
    { "websocket,;", OK },        { "websocket, a / b", OK },
    { "websocket, foo bar", OK }, { "websocket, \"x\"", OK },
    { "websocket, x\x0b", OK },   { "websocket,\x01", OK },
    { "WebSocket ,\r\n", OK },
  };
  RUN (MHD_websocket_check_upgrade_header, c);
}
END_TEST


START_TEST (test_upgrade_slash_is_token_char_anywhere)
{
  /* As in the original, "/" is a token character in any position, so
     an element with slashes is well-formed; it is never "websocket". */
  static const struct hcase c[] = {
    { "/,websocket", OK },     { "foo/,websocket", OK },
    { "/x, websocket", OK },   { "a/b/c, websocket", OK },
    { "//, websocket", OK },   { "a / b, websocket", OK },
    { "websocket,/", OK },     { "foo/", NO_HS },
    { "/websocket", NO_HS },   { "websocket/", NO_HS },
    { "websocket/13", NO_HS }, { "/", NO_HS },
  };
  char s[32];
  size_t i;
  RUN (MHD_websocket_check_upgrade_header, c);
  /* A slash at every position of the keyword: no match alone, and no
     error before a later "websocket". */
  for (i = 0; i <= 9; i++)
  {
    memcpy (s, "websocket", i);
    s[i] = '/';
    memcpy (s + i + 1, "websocket" + i, 9 - i);
    s[10] = '\0';
    ck_assert_msg (NO_HS == MHD_websocket_check_upgrade_header (s),
                   "%s: expected -7", s);
    memcpy (s + 10, ",websocket", 11);
    ck_assert_msg (OK == MHD_websocket_check_upgrade_header (s),
                   "%s: expected OK", s);
  }
}
END_TEST


START_TEST (test_upgrade_null_rejected)
{
  ck_assert_int_eq (MHD_websocket_check_upgrade_header (NULL), NO_HS);
}
END_TEST


START_TEST (test_upgrade_every_byte_inside_another_element)
{
  /* "a?b, websocket": fine when ? is a tchar, a slash, a comma, or a
     space or tab; "websocket, a?b" always (the rest is not examined). */
  unsigned b;
  for (b = 1; b < 256; b++)
  {
    char s[20];
    int want = (is_tchar (b) || ',' == b || '/' == b || ' ' == b || '\t' == b)
                 ? OK
                 : NO_HS;
    snprintf (s, sizeof (s), "a%cb, websocket", (char) b);
    ck_assert_msg (MHD_websocket_check_upgrade_header (s) == want,
                   "%s: expected %d", esc (s), want);
    snprintf (s, sizeof (s), "websocket, a%cb", (char) b);
    ck_assert_msg (MHD_websocket_check_upgrade_header (s) == OK,
                   "%s: expected OK", esc (s));
  }
}
END_TEST


START_TEST (test_upgrade_every_byte_after_and_before_websocket)
{
  unsigned b;
  for (b = 1; b < 256; b++)
  {
    char s[20];
    int want = (',' == b || ' ' == b || '\t' == b) ? OK : NO_HS;
    snprintf (s, sizeof (s), "websocket%c", (char) b);
    ck_assert_msg (MHD_websocket_check_upgrade_header (s) == want,
                   "%s: expected %d", esc (s), want);
    snprintf (s, sizeof (s), "%cwebsocket", (char) b);
    ck_assert_msg (MHD_websocket_check_upgrade_header (s) == want,
                   "%s: expected %d", esc (s), want);
  }
}
END_TEST


/* ------------------------------------------------------------ version hdr */

START_TEST (test_version_header_exactly_13)
{
  static const struct hcase c[] = {
    { "13", OK },       { "12", NO_HS },
    { "14", NO_HS },    { " 13", NO_HS },
    { "13 ", NO_HS },   { "\t13", NO_HS },
    { "013", NO_HS },   { "13,8", NO_HS },
    { "8, 13", NO_HS }, { "13, 8", NO_HS },
    { "", NO_HS },      { "1", NO_HS },
    { "3", NO_HS },     { "130", NO_HS },
    { "113", NO_HS },   { "13\r\n", NO_HS },
    { "+13", NO_HS },   { "0x0d", NO_HS },
    { "13.0", NO_HS },  { "\xef\xbc\x91\xef\xbc\x93", NO_HS },
  };
  RUN (MHD_websocket_check_version_header, c);
}
END_TEST


START_TEST (test_version_header_null_rejected)
{
  ck_assert_int_eq (MHD_websocket_check_version_header (NULL), NO_HS);
}
END_TEST


START_TEST (test_version_header_every_two_and_three_byte_value)
{
  /* Only "13" of all 1..3 byte values: nothing before or after it. */
  unsigned a;
  unsigned b;
  char s[4];
  for (a = 1; a < 256; a++)
    for (b = 1; b < 256; b++)
    {
      int want = ('1' == a && '3' == b) ? OK : NO_HS;
      s[0] = (char) a;
      s[1] = (char) b;
      s[2] = '\0';
      if (MHD_websocket_check_version_header (s) != want)
        ck_abort_msg ("%s: expected %d", esc (s), want);
    }
  for (a = 1; a < 256; a++)
  {
    snprintf (s, sizeof (s), "13%c", (char) a);
    if (MHD_websocket_check_version_header (s) != NO_HS)
      ck_abort_msg ("%s accepted", esc (s));
    snprintf (s, sizeof (s), "%c13", (char) a);
    if (MHD_websocket_check_version_header (s) != NO_HS)
      ck_abort_msg ("%s accepted", esc (s));
  }
}
END_TEST


/* ------------------------------------------------------------ accept */

#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define FILL 0x55
#define OUTBUF 64

static const char b64chars[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The expected accept value for a (trimmed) key, with OpenSSL. */
static void
reference_accept (const char *key, char out[29])
{
  unsigned char in[256];
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  size_t kl = strlen (key);

  ck_assert_uint_lt (kl + sizeof (GUID), sizeof (in));
  memcpy (in, key, kl);
  memcpy (in + kl, GUID, sizeof (GUID) - 1);
  ck_assert_int_eq (
    EVP_Digest (in, kl + sizeof (GUID) - 1, md, &mdlen, EVP_sha1 (), NULL), 1);
  ck_assert_uint_eq (mdlen, 20);
  ck_assert_int_eq (EVP_EncodeBlock ((unsigned char *) out, md, 20), 28);
}

/* base64 of @a n bytes into @a out (NUL-terminated). */
static void
b64 (const unsigned char *bytes, size_t n, char *out)
{
  EVP_EncodeBlock ((unsigned char *) out, bytes, (int) n);
}

/* Calls the library with a 64-byte output filled with FILL, and checks
   that nothing from byte 29 on was touched, whatever the outcome. */
static int
accept_call (const char *key, unsigned char out[OUTBUF])
{
  int r;
  size_t i;
  memset (out, FILL, OUTBUF);
  r = MHD_websocket_create_accept_header (key, (char *) out);
  for (i = 29; i < OUTBUF; i++)
    if (FILL != out[i])
      ck_abort_msg ("key %s: byte %zu of the output written (0x%02x)",
                    esc (key), i, out[i]);
  return r;
}

/* Asserts @a key is accepted with the same value as @a trimmed. */
static void
expect_accept (const char *key, const char *trimmed)
{
  unsigned char out[OUTBUF];
  char want[29];
  int r = accept_call (key, out);
  reference_accept (trimmed, want);
  if (OK != r)
    ck_abort_msg ("key %s rejected with %d", esc (key), r);
  if (0 != memcmp (out, want, 28) || '\0' != out[28])
    ck_abort_msg ("key %s: got %.28s, expected %s", esc (key),
                  (const char *) out, want);
}

static void
expect_reject (const char *key)
{
  unsigned char out[OUTBUF];
  int r = accept_call (key, out);
  if (NO_HS != r)
    ck_abort_msg ("key %s: %d instead of %d", esc (key), r, NO_HS);
}


START_TEST (test_accept_rfc6455_example)
{
  unsigned char out[OUTBUF];
  ck_assert_int_eq (accept_call (RFC_KEY, out), OK);
  ck_assert_mem_eq (out, RFC_ACCEPT, 28);
  ck_assert_int_eq (out[28], '\0');
  /* and the OpenSSL reference used below agrees with the RFC */
  expect_accept (RFC_KEY, RFC_KEY);
}
END_TEST


START_TEST (test_accept_surrounding_spaces_and_tabs_ignored)
{
  static const char *const keys[] = {
    " " RFC_KEY,
    RFC_KEY " ",
    "\t" RFC_KEY "\t",
    "  \t " RFC_KEY " \t  ",
    " \t \t \t \t \t \t \t \t \t \t \t \t \t " RFC_KEY,
  };
  size_t i;
  for (i = 0; i < NCASES (keys); i++)
  {
    unsigned char out[OUTBUF];
    ck_assert_msg (OK == accept_call (keys[i], out), "%s rejected",
                   esc (keys[i]));
    ck_assert_msg (0 == memcmp (out, RFC_ACCEPT, 29), "%s: wrong value %.28s",
                   esc (keys[i]), (const char *) out);
  }
}
END_TEST


START_TEST (test_accept_only_spaces_and_tabs_are_trimmed)
{
  /* Other white space is no base64 character. */
  expect_reject (RFC_KEY "\r\n");
  expect_reject (RFC_KEY "\n");
  expect_reject ("\r\n" RFC_KEY);
  expect_reject ("\x0b" RFC_KEY);
  expect_reject (RFC_KEY "\f");
  expect_reject (" \t ");
}
END_TEST


START_TEST (test_accept_random_keys_match_openssl)
{
  unsigned n;
  uint32_t x = 0x12345679;
  for (n = 0; n < 200; n++)
  {
    unsigned char raw[16];
    char key[32];
    char padded[40];
    size_t i;
    for (i = 0; i < 16; i++)
    {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      raw[i] = (unsigned char) x;
    }
    b64 (raw, 16, key);
    ck_assert_uint_eq (strlen (key), 24);
    expect_accept (key, key);
    snprintf (padded, sizeof (padded), "%s%s%s", (n & 1) ? " " : "\t", key,
              (n & 2) ? "\t " : " ");
    expect_accept (padded, key);
  }
}
END_TEST


START_TEST (test_accept_every_base64_character_in_each_free_position)
{
  /* Positions 0..20 carry six bits each: any base64 character is fine. */
  char key[25];
  size_t pos;
  size_t c;
  for (pos = 0; pos < 21; pos++)
    for (c = 0; c < 64; c++)
    {
      memcpy (key, RFC_KEY, 25);
      key[pos] = b64chars[c];
      expect_accept (key, key);
    }
}
END_TEST


START_TEST (test_accept_key_with_nonzero_unused_bits_rejected_as_not_canonical)
{
  /* The 22nd character carries the last 2 bits of byte 16 and 4 unused
     bits: only A, Q, g and w (unused bits zero) are the canonical base64
     of 16 bytes; the others would decode to the same bytes by dropping
     bits, which we refuse. */
  char key[25];
  size_t c;
  for (c = 0; c < 64; c++)
  {
    memcpy (key, RFC_KEY, 25);
    key[21] = b64chars[c];
    if (0 == c % 16)
      expect_accept (key, key);
    else
      expect_reject (key);
  }
  expect_reject ("dGhlIHNhbXBsZSBub25jZR==");
}
END_TEST


START_TEST (test_accept_null_key_rejected)
{
  unsigned char out[OUTBUF];
  size_t i;
  ck_assert_int_eq (accept_call (NULL, out), NO_HS);
  /* As in the original: an empty string is left behind, and nothing
     else is written. */
  ck_assert_uint_eq (out[0], '\0');
  for (i = 1; i < OUTBUF; i++)
    ck_assert_uint_eq (out[i], FILL);
}
END_TEST


START_TEST (test_accept_rejected_key_leaves_empty_string)
{
  /* Every -7 leaves out[0] NUL (the original wrote it first), also for
     the keys that only this library rejects. */
  static const char *const bad[] = { "", "x", "dGhlIHNhbXBsZSBub25jZQ=",
                                     "dGhlIHNhbXBsZSBub25jZR==" };
  unsigned char out[OUTBUF];
  size_t i;
  for (i = 0; i < sizeof (bad) / sizeof (bad[0]); i++)
  {
    ck_assert_int_eq (accept_call (bad[i], out), NO_HS);
    ck_assert_uint_eq (out[0], '\0');
  }
}
END_TEST


START_TEST (test_accept_null_output_is_parameter_error)
{
  ck_assert_int_eq (MHD_websocket_create_accept_header (RFC_KEY, NULL),
                    MHD_WEBSOCKET_STATUS_PARAMETER_ERROR);
}
END_TEST


START_TEST (test_accept_key_not_of_16_bytes_rejected)
{
  /* base64 of 0..40 bytes: only 16 bytes make a key (RFC 6455 4.2.1);
     17 bytes give 24 characters too, with one '='. */
  unsigned char raw[40];
  char key[64];
  size_t n;
  for (n = 0; n < sizeof (raw); n++)
    raw[n] = (unsigned char) (0x5A + 37 * n);
  for (n = 0; n <= sizeof (raw); n++)
  {
    b64 (raw, n, key);
    if (16 == n)
      expect_accept (key, key);
    else
      expect_reject (key);
  }
  expect_reject ("");
}
END_TEST


START_TEST (test_accept_padding_must_be_exactly_two_equals_signs)
{
  expect_reject ("dGhlIHNhbXBsZSBub25jZQ"); /* unpadded */
  expect_reject ("dGhlIHNhbXBsZSBub25jZQ=");
  expect_reject ("dGhlIHNhbXBsZSBub25jZQ===");
  expect_reject ("dGhlIHNhbXBsZSBub25jZQAA"); /* 24 chars, no padding */
  expect_reject ("dGhlIHNhbXBsZSBub25jZQ=A");
  expect_reject ("dGhlIHNhbXBsZSBub25jZ===");
  expect_reject ("dGhlIHNh=XBsZSBub25jZQ=="); /* '=' in the middle */
  expect_reject ("=GhlIHNhbXBsZSBub25jZQ==");
  expect_reject ("dGhlIHNhbXBsZSBub25jZ=Q=");
  expect_reject ("==dGhlIHNhbXBsZSBub25jZQ");
  expect_reject ("A===");
  expect_reject ("========================");
  expect_reject ("dGhlIHNhbXBsZSBub25jZQ== dGhlIHNhbXBsZSBub25jZQ==");
}
END_TEST


START_TEST (test_accept_non_base64_characters_rejected)
{
  /* Every byte outside the base64 alphabet (and '=' outside the
     padding), in the first, a middle and the last data position. */
  static const size_t positions[] = { 0, 5, 12, 21 };
  char key[25];
  unsigned b;
  size_t p;
  for (b = 1; b < 256; b++)
  {
    if (NULL != strchr (b64chars, (int) b))
      continue;
    for (p = 0; p < NCASES (positions); p++)
    {
      memcpy (key, RFC_KEY, 25);
      key[positions[p]] = (char) b;
      expect_reject (key);
    }
  }
  expect_reject ("dGhlIHNh-XBsZSBub25jZQ==");
  expect_reject ("dGhlIHNh_XBsZSBub25jZQ==");
  expect_reject ("dGhlIHNh!XBsZSBub25jZQ==");
  expect_reject ("dGhlIHNh XBsZSBub25jZQ==");
  expect_reject ("dGhlIHNhbXBsZSBub25jZQ= =");
}
END_TEST


static Suite *
handshake_suite (void)
{
  Suite *s = suite_create ("handshake");
  TCase *hv = tcase_create ("http version");
  TCase *co = tcase_create ("connection");
  TCase *up = tcase_create ("upgrade");
  TCase *ve = tcase_create ("websocket version");
  TCase *ac = tcase_create ("accept");

  tcase_add_test (hv, test_http_version_1_1_and_above_accepted);
  tcase_add_test (hv, test_http_version_minor_is_an_integer_not_a_fraction);
  tcase_add_test (hv, test_http_version_leading_zeros_do_not_change_value);
  tcase_add_test (hv, test_http_version_below_1_1_rejected);
  tcase_add_test (hv, test_http_version_syntax_is_strict);
  tcase_add_test (hv, test_http_version_null_rejected);
  tcase_add_test (hv, test_http_version_long_digit_strings_do_not_overflow);
  suite_add_tcase (s, hv);

  tcase_add_test (co, test_connection_upgrade_any_case_accepted);
  tcase_add_test (co, test_connection_upgrade_among_other_tokens_accepted);
  tcase_add_test (co, test_connection_spaces_and_tabs_around_elements_ignored);
  tcase_add_test (co, test_connection_empty_list_elements_allowed_rfc7230);
  tcase_add_test (co, test_connection_without_upgrade_element_rejected);
  tcase_add_test (co, test_connection_null_rejected);
  tcase_add_test (co, test_connection_element_of_several_words_is_no_match);
  tcase_add_test (co, test_connection_quoted_string_before_match_rejected);
  tcase_add_test (co, test_connection_whitespace_other_than_space_tab_rejected);
  tcase_add_test (co, test_connection_non_token_byte_before_match_rejected);
  tcase_add_test (co, test_connection_rest_after_match_not_examined);
  tcase_add_test (co, test_connection_every_byte_inside_another_element);
  tcase_add_test (co, test_connection_every_byte_after_and_before_upgrade);
  suite_add_tcase (s, co);

  tcase_add_test (up, test_upgrade_websocket_any_case_accepted);
  tcase_add_test (up, test_upgrade_websocket_among_other_protocols_accepted);
  tcase_add_test (up, test_upgrade_empty_list_elements_allowed_rfc7230);
  tcase_add_test (up, test_upgrade_without_websocket_element_rejected);
  tcase_add_test (up, test_upgrade_non_token_before_match_rejected);
  tcase_add_test (up, test_upgrade_rest_after_match_not_examined);
  tcase_add_test (up, test_upgrade_slash_is_token_char_anywhere);
  tcase_add_test (up, test_upgrade_null_rejected);
  tcase_add_test (up, test_upgrade_every_byte_inside_another_element);
  tcase_add_test (up, test_upgrade_every_byte_after_and_before_websocket);
  suite_add_tcase (s, up);

  tcase_add_test (ve, test_version_header_exactly_13);
  tcase_add_test (ve, test_version_header_null_rejected);
  tcase_add_test (ve, test_version_header_every_two_and_three_byte_value);
  suite_add_tcase (s, ve);

  tcase_add_test (ac, test_accept_rfc6455_example);
  tcase_add_test (ac, test_accept_surrounding_spaces_and_tabs_ignored);
  tcase_add_test (ac, test_accept_only_spaces_and_tabs_are_trimmed);
  tcase_add_test (ac, test_accept_random_keys_match_openssl);
  tcase_add_test (ac, test_accept_every_base64_character_in_each_free_position);
  tcase_add_test (
    ac, test_accept_key_with_nonzero_unused_bits_rejected_as_not_canonical);
  tcase_add_test (ac, test_accept_null_key_rejected);
  tcase_add_test (ac, test_accept_rejected_key_leaves_empty_string);
  tcase_add_test (ac, test_accept_null_output_is_parameter_error);
  tcase_add_test (ac, test_accept_key_not_of_16_bytes_rejected);
  tcase_add_test (ac, test_accept_padding_must_be_exactly_two_equals_signs);
  tcase_add_test (ac, test_accept_non_base64_characters_rejected);
  suite_add_tcase (s, ac);
  return s;
}


int
main (void)
{
  SRunner *sr = srunner_create (handshake_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (failed > 0) ? EXIT_FAILURE : EXIT_SUCCESS;
}
