/*
  This file is part of libmicrohttpd_ws.
  Copyright (C) 2026 The libmicrohttpd_ws developers
  SPDX-License-Identifier: LGPL-2.1-or-later
*/

/**
 * @file test_mhd_version.c
 * @brief The libmicrohttpd that make check's programs load is the one
 *        configure found, and its header matches it.
 *
 * libmicrohttpd 0.9.75 (Debian 12) and 1.0.x (Debian 13) share the soname
 * libmicrohttpd.so.12.  A build against an MHD of its own prefix
 * (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig) that lost configure's run-time
 * path would compile against one version's header and run on the
 * system's library, and every test would then test the wrong MHD.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <check.h>
#include <microhttpd.h>

#ifndef WS_MHD_VERSION_FOUND
#error "WS_MHD_VERSION_FOUND: the version configure found (Makefile.am)"
#endif


START_TEST (test_loaded_library_is_the_configured_one)
{
  ck_assert_str_eq (MHD_get_version (), WS_MHD_VERSION_FOUND);
}
END_TEST


START_TEST (test_header_is_the_loaded_library)
{
  /* MHD_VERSION holds the version's digits as hex: 0x00097500 is 0.9.75,
     0x01000100 is 1.0.1. */
  char header[32];
  unsigned long v = (unsigned long) MHD_VERSION;

  snprintf (header, sizeof (header), "%lx.%lx.%lx", (v >> 24) & 0xff,
            (v >> 16) & 0xff, (v >> 8) & 0xff);
  ck_assert_str_eq (MHD_get_version (), header);
}
END_TEST


static Suite *
mhd_version_suite (void)
{
  Suite *s = suite_create ("libmicrohttpd version");
  TCase *tc = tcase_create ("version");

  tcase_add_test (tc, test_loaded_library_is_the_configured_one);
  tcase_add_test (tc, test_header_is_the_loaded_library);
  suite_add_tcase (s, tc);
  return s;
}


int
main (void)
{
  SRunner *sr = srunner_create (mhd_version_suite ());
  int failed;

  printf ("libmicrohttpd %s (configure found %s)\n", MHD_get_version (),
          WS_MHD_VERSION_FOUND);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return (failed > 0) ? EXIT_FAILURE : EXIT_SUCCESS;
}
