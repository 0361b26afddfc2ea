#!/bin/sh
# This file is part of libmicrohttpd_ws.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Starts the echo example on a free port, runs the load generator against
# it and stops the server by its PID, also when the load run fails.
#
# usage: load.sh ECHO_PROGRAM LOAD_PROGRAM [LOAD_OPTIONS...]
#   ECHO_PROGRAM may be a libtool wrapper (it execs the real program, so
#   the PID stays the server's).
set -u

if [ $# -lt 2 ]; then
  echo "usage: $0 ECHO_PROGRAM LOAD_PROGRAM [LOAD_OPTIONS...]" >&2
  exit 2
fi
echo_prog=$1
load_prog=$2
shift 2

out=$(mktemp)
# The server runs one event loop per core and the client one thread, so
# neither starves the other at equal priority.
"$echo_prog" 0 >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$out"' EXIT INT TERM

# The first line names the port; wait for it at most 10 s.
port=""
i=0
while [ $i -lt 100 ]; do
  port=$(sed -n '1s|^Serving on http://127\.0\.0\.1:\([0-9][0-9]*\)/$|\1|p' "$out")
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
  i=$((i + 1))
done
if [ -z "$port" ]; then
  echo "$0: the echo server did not start:" >&2
  cat "$out" >&2
  exit 1
fi

echo "echo server (PID $pid) on port $port"
"$load_prog" -p "$port" "$@"
rc=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "$0: the echo server died during the run" >&2
  rc=1
fi
exit $rc
