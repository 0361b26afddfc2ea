#!/bin/sh
# This file is part of libmicrohttpd_ws.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# make bench-writev: "frames queued for one connection go out in one
# writev" (issue 19).  Starts the echo server, traces its sending system
# calls with strace, and has tests/bench/burst.py send ROUNDS bursts of
# FRAMES frames, each burst in one write.  Each burst must be answered by
# one call (writev, sendmsg, send or write) carrying all its echoes: it
# fails when more calls than bursts carried them.  Exits 77 (skipped)
# without strace or when ptrace is not allowed.
#
# usage: writev-check.sh ECHO_PROGRAM [FRAMES [ROUNDS]]
set -u

prog=$1
frames=${2:-10}
rounds=${3:-20}
python=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)

command -v strace >/dev/null 2>&1 || { echo "$0: no strace: skipped"; exit 77; }
out=$(mktemp)
trace=$(mktemp)
spid=""
"$prog" 0 >"$out" 2>&1 &
pid=$!
cleanup () {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -f "$out" "$trace"
}
trap cleanup EXIT INT TERM

port=""
i=0
while [ $i -lt 100 ]; do
  port=$(sed -n '1s|^Serving on http://127\.0\.0\.1:\([0-9][0-9]*\)/$|\1|p' "$out")
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
  i=$((i + 1))
done
[ -n "$port" ] || { echo "$0: the server did not start" >&2; cat "$out" >&2; exit 1; }

strace -f -qq -s 64 -e trace=writev,sendmsg,sendto,write -o "$trace" -p "$pid" &
spid=$!
# Time for strace to attach to every thread.
sleep 1
if ! kill -0 "$spid" 2>/dev/null; then
  echo "$0: strace could not attach (ptrace not allowed?): skipped"
  spid=""
  exit 77
fi
"$python" "$here/burst.py" "$port" "$frames" "$rounds" || exit 1
sleep 0.5
kill "$spid" 2>/dev/null
wait "$spid" 2>/dev/null
spid=""
calls=$(grep -c 'burst' "$trace")
echo "$rounds bursts of $frames frames: $calls sending system calls carried the echoes"
grep 'burst' "$trace" | sed 's/^[0-9]* *//; s/(.*//' | sort | uniq -c
if [ "$calls" -ne "$rounds" ]; then
  echo "$0: FAIL: expected one call per burst ($rounds)" >&2
  exit 1
fi
