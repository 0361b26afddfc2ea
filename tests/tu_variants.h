/*
  This file is part of libmicrohttpd_ws.
  SPDX-License-Identifier: LGPL-2.1-or-later
*/
/**
 * @file tests/tu_variants.h
 * @brief Runs a test once for each code variant this CPU offers.
 *
 * For the suites of the internal modules (test_mask, test_utf8), which
 * link the convenience library and so see src/cpu.h.  Every test is a
 * Check loop test over 0 .. tu_count_variants() - 1 and starts with
 * tu_use_variant (_i), so that the SIMD code is held to the same cases
 * as the portable code.
 */
#ifndef TU_VARIANTS_H
#define TU_VARIANTS_H

#include <check.h>
#include "cpu.h"

/** The variant the running test uses. */
static const struct ws_simd_impl *variant;

static inline void
tu_use_variant (int i)
{
  const struct ws_simd_impl *list;
  size_t n = ws_simd_impls (&list);

  ck_assert_int_lt (i, (int) n);
  variant = &list[i];
}

static inline int
tu_count_variants (void)
{
  const struct ws_simd_impl *list;
  return (int) ws_simd_impls (&list);
}

#endif
