#!/bin/sh
# This file is part of libmicrohttpd_ws.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# make soak: starts the echo server on a free port, runs the churn client
# (tests/bench/churn.c) against it for SOAK_SECONDS with SOAK_N
# connections, and stops the server by its PID, also when the run fails.
# churn fails unless the server's descriptors and VmRSS are back to their
# start afterwards (see churn.c for the tolerance).
#
# usage: soak.sh ECHO_PROGRAM CHURN_PROGRAM [CHURN_OPTIONS...]
# Environment: SOAK_N (default 15000), SOAK_SECONDS (default 300).
#   ECHO_PROGRAM may be a libtool wrapper (it execs the real program, so
#   the PID stays the server's).
set -u

if [ $# -lt 2 ]; then
  echo "usage: $0 ECHO_PROGRAM CHURN_PROGRAM [CHURN_OPTIONS...]" >&2
  exit 2
fi
echo_prog=$1
churn_prog=$2
shift 2
n=${SOAK_N:-15000}
seconds=${SOAK_SECONDS:-300}

# A descriptor per connection on both sides: the soft limit up to the
# hard one; the server inherits it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)
if [ "$limit" != unlimited ] && [ "$limit" -lt $((n + 64)) ]; then
  echo "$0: the descriptor limit is $limit: too low for $n connections" >&2
  exit 1
fi

out=$(mktemp)
"$echo_prog" 0 >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$out"' EXIT INT TERM

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

echo "churn soak: $n connections for $seconds s against $echo_prog (PID $pid, port $port), descriptor limit $limit"
"$churn_prog" -P "$pid" -p "$port" -c "$n" -d "$seconds" "$@"
rc=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "$0: the echo server died during the run" >&2
  cat "$out" >&2
  rc=1
fi
exit $rc
