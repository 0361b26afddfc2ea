#!/bin/sh
# This file is part of libmicrohttpd_ws.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The chat on one process against the chat on three (Redis fan-out), in
# one run and with the same load (tests/bench/chatload):
#   1. one chatserver, no Redis, clients connected to it directly;
#   2. three chatservers with --redis behind HAProxy (run-chat-cluster);
#   3. the same three, clients spread over them directly (no HAProxy),
#      to tell Redis's part from HAProxy's.
# Prints one table row per setup: delivery latency percentiles (a
# message sent every 1/RATE s) and deliveries per second (a burst).
# The servers run with --no-presence: with presence every join reaches
# every member, and connecting N clients costs N*N/2 events first.
# Every process it starts is stopped by its PID.
#
# usage: bench-cluster.sh SRCDIR CHATSERVER CHATLOAD [CHATLOAD_OPTIONS...]
#   (default options: -c 1500 -m 50 -r 10 -b 50)
set -u
if [ $# -lt 3 ]; then
  echo "usage: $0 SRCDIR CHATSERVER CHATLOAD [CHATLOAD_OPTIONS...]" >&2
  exit 2
fi
srcdir=$1
chat=$2
load=$3
shift 3
[ $# -gt 0 ] || set -- -c 1500 -m 50 -r 10 -b 50

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-cluster.XXXXXX")
pids=
cleanup () {
  for p in $pids; do kill "$p" 2> /dev/null; done
  for p in $pids; do wait "$p" 2> /dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rows=
failed=0
# Runs chatload with the ports given and the options; adds a row.
measure () {
  label=$1
  shift
  echo "---- $label"
  "$load" "$@" | tee "$tmp/load.out"
  [ "$?" -eq 0 ] || failed=1
  r=$(sed -n 's/^RESULT //p' "$tmp/load.out")
  [ -n "$r" ] || { failed=1; return; }
  get () { echo "$r" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  rows="$rows$(printf '| %-34s | %7s | %7s | %8s | %9s | %7s |' "$label" \
    "$(get clients)" "$(get p50_ms)" "$(get p99_ms)" "$(get burst_per_s)" \
    "$(get missing)")
"
}

# 1. One process.
"$chat" --no-presence 0 > "$tmp/single.out" 2> "$tmp/single.log" &
single=$!
pids="$pids $single"
i=0
port=
while [ $i -lt 100 ] && [ -z "$port" ]; do
  port=$(sed -n 's|^Serving on http://127\.0\.0\.1:\([0-9]*\)/$|\1|p' "$tmp/single.out")
  [ -n "$port" ] || sleep 0.1
  i=$((i + 1))
done
[ -n "$port" ] || { echo "$0: chatserver did not start" >&2; exit 1; }
measure "1 process" -p "$port" "$@"
kill "$single"
wait "$single" 2> /dev/null

# 2. and 3. Three processes through Redis.
CHATSERVER=$chat CHAT_OPTIONS=--no-presence PORT=0 \
  sh "$srcdir/scripts/run-chat-cluster" 3 \
  > "$tmp/cluster.out" &
script=$!
pids="$pids $script"
i=0
while [ $i -lt 600 ] && ! grep -q '^Open ' "$tmp/cluster.out"; do
  kill -0 "$script" 2> /dev/null || break
  sleep 0.1
  i=$((i + 1))
done
grep -q '^Open ' "$tmp/cluster.out" || {
  cat "$tmp/cluster.out" >&2; echo "$0: the cluster did not start" >&2; exit 1; }
hport=$(sed -n 's|^Open http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$tmp/cluster.out")
direct=$(sed -n 's|^chatserver [0-9]* pid [0-9]* on http://127\.0\.0\.1:\([0-9]*\)/.*|-p \1|p' \
  "$tmp/cluster.out" | tr '\n' ' ')
measure "3 processes + Redis, via HAProxy" -p "$hport" "$@"
# shellcheck disable=SC2086 # one -p PORT per process
measure "3 processes + Redis, direct" $direct "$@"
kill "$script"
wait "$script" 2> /dev/null

echo
echo "chatload $*, servers with --no-presence   (load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs)"
printf '| %-34s | %7s | %7s | %8s | %9s | %7s |\n' setup clients "p50 ms" \
  "p99 ms" "burst/s" missing
echo "|------------------------------------|---------|---------|----------|-----------|---------|"
printf '%s' "$rows"
exit $failed
