#!/bin/sh
# Runs the tests that need real peers (the example servers and client
# against Python, node and Chromium, and the conformance suites) and sums
# their results.
#
# Usage: run-all.sh SRCDIR BUILDDIR TEST...
# Each TEST is a path under SRCDIR; .py files run with /usr/bin/python3
# (Debian's, which has python3-websockets), .js/.mjs files with node and
# the packages of SRCDIR/tests/node_modules.  Every TEST gets BUILDDIR as
# its argument and ends its output with a line "N passed, N failed".
# The last line printed here is the sum in the same form.
set -u
srcdir=$1
builddir=$2
shift 2
NODE_PATH="$srcdir/tests/node_modules${NODE_PATH:+:$NODE_PATH}"
export NODE_PATH
total_pass=0
total_fail=0
for t in "$@"; do
  case "$t" in
    *.py) runner=/usr/bin/python3 ;;
    *.js | *.mjs) runner=node ;;
    *) runner=sh ;;
  esac
  printf '\n---- %s\n' "$t"
  out=$("$runner" "$srcdir/$t" "$builddir" 2>&1)
  rc=$?
  printf '%s\n' "$out"
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
  if [ -n "$line" ]; then
    p=$(echo "$line" | awk '{print $1}')
    f=$(echo "$line" | awk '{print $3}')
  else
    p=0
    f=1
  fi
  # A crash after the summary line still counts as a failure.
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
  fi
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
done
echo
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
