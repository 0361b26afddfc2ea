#!/bin/sh
# This file is part of libmicrohttpd_ws.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The man pages: each renders without a warning under groff -ww and
# man --warnings, each ".so" link points at a page that exists, each page
# is installed (dist_man3_MANS), and every MHD_websocket_* function that
# the public header declares has a page whose NAME and SYNOPSIS name it
# and is listed in libmicrohttpd_ws(3): a new function without a page
# fails here.  Skips (77) without groff or man.
set -u
srcdir=${top_srcdir:-.}
man_dir=$(cd "$srcdir/doc/man" && pwd)
header=$srcdir/include/microhttpd_ws.h

command -v groff > /dev/null 2>&1 || { echo "SKIP: groff not found"; exit 77; }
command -v man > /dev/null 2>&1 || { echo "SKIP: man not found"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# ".so man3/X.3" is resolved from the current directory, as below mandir.
ln -s "$man_dir" "$tmp/man3"

passed=0
failed=0
pass () { passed=$((passed + 1)); }
fail () { echo "FAIL: $*"; failed=$((failed + 1)); }

# The page a name resolves to, following one .so link.
resolve () {
  first=$(sed -n 1p "$man_dir/$1.3")
  case $first in
    ".so man3/"*) echo "$man_dir/${first#.so man3/}" ;;
    *) echo "$man_dir/$1.3" ;;
  esac
}

for page in "$man_dir"/*.3; do
  name=$(basename "$page")
  first=$(sed -n 1p "$page")
  case $first in
    ".so "*)
      target=${first#.so }
      if [ -f "$tmp/$target" ] && [ "$(wc -l < "$page")" -eq 1 ]; then
        pass
      else
        fail "$name: '$first' does not name an existing page"
        continue
      fi ;;
  esac
  out=$(cd "$tmp" && groff -man -ww -z "man3/$name" 2>&1)
  if [ -z "$out" ]; then pass; else fail "groff -man -ww -z $name:"; echo "$out"; fi
  out=$(cd "$tmp" && MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "man3/$name" 2>&1 > /dev/null)
  if [ -z "$out" ]; then pass; else fail "man --warnings -l $name:"; echo "$out"; fi
  if grep -q "doc/man/$name" "$srcdir/Makefile.am"; then
    pass
  else
    fail "$name is not in dist_man3_MANS, so it is not installed"
  fi
done

funcs=$(sed -n 's/^\(MHD_websocket_[A-Za-z0-9_]*\) *(.*/\1/p' "$header" | sort -u)
[ -n "$funcs" ] || fail "no MHD_websocket_* declaration found in $header"
for f in $funcs; do
  if [ ! -f "$man_dir/$f.3" ]; then
    fail "$f has no man page doc/man/$f.3"
    continue
  fi
  real=$(resolve "$f")
  if sed -n '/^\.SH NAME/,/^\.SH SYNOPSIS/p' "$real" | grep -q "\\b$f\\b" \
     && sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p' "$real" | grep -q "$f(" ; then
    pass
  else
    fail "$(basename "$real") does not name $f in NAME and SYNOPSIS"
  fi
  if grep -q "^\.BR $f (3)" "$man_dir/libmicrohttpd_ws.3"; then
    pass
  else
    fail "libmicrohttpd_ws.3 does not refer to $f(3)"
  fi
done

echo "man pages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
