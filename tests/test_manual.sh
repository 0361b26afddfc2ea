#!/bin/sh
# This file is part of libmicrohttpd_ws.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The Texinfo manual: every MHD_websocket_* function that the public
# header declares has a @deftypefun in a node of its own, and the built
# info file (when the info reader is there) opens that node by name; every
# C example the manual includes was compiled by this build.
set -u
srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
texi=$srcdir/doc/libmicrohttpd_ws.texi
# Built in the build tree; a release tarball ships it in the source tree.
info_file=$builddir/doc/libmicrohttpd_ws.info
[ -f "$info_file" ] || info_file=$srcdir/doc/libmicrohttpd_ws.info
header=$srcdir/include/microhttpd_ws.h

passed=0
failed=0
pass () { passed=$((passed + 1)); }
fail () { echo "FAIL: $*"; failed=$((failed + 1)); }

use_info=yes
if ! command -v info > /dev/null 2>&1; then
  echo "note: no info reader, the built info file is not opened"
  use_info=no
elif [ ! -f "$info_file" ]; then
  fail "doc/libmicrohttpd_ws.info was not built"
  use_info=no
fi

funcs=$(sed -n 's/^\(MHD_websocket_[A-Za-z0-9_]*\) *(.*/\1/p' "$header" | sort -u)
[ -n "$funcs" ] || fail "no MHD_websocket_* declaration found in $header"
for f in $funcs; do
  if grep -q "^@node $f\$" "$texi" && grep -q "^@deftypefun .* $f (" "$texi"; then
    pass
  else
    fail "the manual has no '@node $f' with a '@deftypefun ... $f (...)'"
  fi
  if [ "$use_info" = yes ]; then
    if info -f "$info_file" -n "$f" -o - 2> /dev/null | head -n 1 | grep -q "Node: $f,"; then
      pass
    else
      fail "info -f $info_file -n $f does not open the node"
    fi
  fi
done

# Each included C file must have been compiled (into the echo server,
# the examples' test or the README example), so the manual cannot show
# code that does not build.
for inc in $(sed -n 's/^@verbatiminclude examples\/\([A-Za-z0-9_]*\)\.c$/\1/p' "$texi"); do
  found=no
  for o in "$builddir/doc/examples/"*"-$inc.o" "$builddir/doc/examples/$inc.o"; do
    [ -f "$o" ] && found=yes
  done
  if [ "$found" = yes ]; then
    pass
  else
    fail "doc/examples/$inc.c is in the manual but was not compiled"
  fi
done

echo "manual: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
