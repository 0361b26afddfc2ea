#!/bin/sh
# This file is part of libmicrohttpd_ws.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Counts instructions per byte (or per frame / per call) for every
# workload of the benchmark, under callgrind.  Only bench_iteration()
# is collected, so setup and the correctness check are excluded.
# Two figures per workload: everything inside bench_iteration(), and the
# same without the instructions of the benchmark program itself (its
# feeding loop and PLT stubs), i.e. library + libc + libcrypto only.
# Callgrind counts a `rep movsb` as one instruction per byte, so large
# glibc memcpy calls show as about 1 instruction per byte.
#
# usage: callgrind.sh BENCH_BINARY [ITERATIONS]
#   BENCH_BINARY may be a libtool wrapper script: it is then run through
#   `libtool --mode=execute` (libtool is looked up next to the build
#   tree, or set LIBTOOL).
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BENCH_BINARY [ITERATIONS]" >&2
  exit 2
fi
bench=$1
iters=${2:-5}

command -v valgrind >/dev/null 2>&1 || { echo "$0: valgrind not found" >&2; exit 77; }

# A libtool wrapper is a shell script; valgrind must see the real program.
run=""
if head -c 2 "$bench" | grep -q '^#!' && grep -q libtool "$bench"; then
  if [ -z "${LIBTOOL:-}" ]; then
    d=$(cd "$(dirname "$bench")" && pwd)
    while [ "$d" != / ] && [ ! -x "$d/libtool" ]; do d=$(dirname "$d"); done
    [ -x "$d/libtool" ] || { echo "$0: set LIBTOOL for the wrapper $bench" >&2; exit 2; }
    LIBTOOL="$d/libtool"
  fi
  run="$LIBTOOL --mode=execute"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bench" -l > "$tmp/list"
command -v callgrind_annotate >/dev/null 2>&1 || { echo "$0: callgrind_annotate not found" >&2; exit 77; }
printf '%-20s %14s %10s %18s %18s\n' workload instructions units \
  "instr per unit" "excl. harness"
while read -r name unit per_iter; do
  out="$tmp/cg.$name"
  # shellcheck disable=SC2086 # $run is a command prefix or empty
  if ! $run valgrind --tool=callgrind --toggle-collect=bench_iteration \
      --callgrind-out-file="$out" "$bench" -c -1 -w "$name" -n "$iters" \
      > "$tmp/log.$name" 2>&1; then
    echo "$0: $name failed under callgrind:" >&2
    cat "$tmp/log.$name" >&2
    exit 1
  fi
  # The totals line holds the collected instruction count (Ir).
  ir=$(sed -n 's/^\(totals\|summary\): *\([0-9]*\).*/\2/p' "$out" | head -n 1)
  [ -n "$ir" ] || { echo "$0: no totals in $out" >&2; exit 1; }
  # Self cost of every function in the benchmark's own object.
  harness=$(callgrind_annotate --inclusive=no --threshold=100 "$out" 2>/dev/null \
    | awk '/\(.*%\)/ && /\/(lt-)?bench\]$/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
  awk -v n="$name" -v ir="$ir" -v h="$harness" -v it="$iters" -v u="$per_iter" -v un="$unit" \
    'BEGIN { t = it * u;
             printf "%-20s %14.0f %10.0f %10.2f /%-6s %10.2f /%-6s\n",
                    n, ir, t, ir / t, un, (ir - h) / t, un }'
done < "$tmp/list"
