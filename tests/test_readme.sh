#!/bin/sh
# This file is part of libmicrohttpd_ws.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The README's usage example is doc/examples/readme_example.c and its
# server doc/examples/loop_server.c, byte for byte (so the examples that
# the build compiles are the ones people read), and the compiled example
# prints what the README says it does.
set -u
srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
example=$srcdir/doc/examples/readme_example.c

passed=0
failed=0
pass () { passed=$((passed + 1)); }
fail () { echo "FAIL: $*"; failed=$((failed + 1)); }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The indented block after the line that names the file, unindented.
awk '
  found == 0 && /doc\/examples\/readme_example\.c/ { found = 1; next }
  found == 1 && /^    / { sub(/^    /, ""); print; started = 1; next }
  found == 1 && /^$/ { if (started) print; next }
  found == 1 && started { exit }
' "$srcdir/README" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' > "$tmp/readme.c"

if [ ! -s "$tmp/readme.c" ]; then
  fail "no indented example after the line naming doc/examples/readme_example.c in README"
elif diff -u "$example" "$tmp/readme.c"; then
  pass
else
  fail "the README's example differs from doc/examples/readme_example.c (diff above)"
fi

# The server after the line that names doc/examples/loop_server.c.
awk '
  found == 0 && /doc\/examples\/loop_server\.c/ { found = 1; next }
  found == 1 && /^    / { sub(/^    /, ""); print; started = 1; next }
  found == 1 && /^$/ { if (started) print; next }
  found == 1 && started { exit }
' "$srcdir/README" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' > "$tmp/server.c"
if [ ! -s "$tmp/server.c" ]; then
  fail "no indented server after the line naming doc/examples/loop_server.c in README"
elif diff -u "$srcdir/doc/examples/loop_server.c" "$tmp/server.c"; then
  pass
else
  fail "the README's server differs from doc/examples/loop_server.c (diff above)"
fi

# The README's comments promise this output.
prog=$builddir/doc/examples/readme_example
if [ -x "$prog" ]; then
  out=$("$prog")
  expected='received "Hello" (5 bytes)
echo frame: 7 bytes'
  if [ "$out" = "$expected" ]; then
    pass
  else
    fail "readme_example printed:"; echo "$out"
  fi
else
  fail "$prog was not built"
fi

echo "readme: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
