#!/bin/sh
# This file is part of libmicrohttpd_ws.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# make bench-scale: examples/echo, examples/chatserver, the floor server
# (tests/bench/floor.c: the least a server can do per echo and per
# broadcast delivery) and the node ws server (tests/bench/ws-scale-server.js)
# under the same load generator (tests/bench/load.c, scale mode) in one
# run, one table, with each example's CPU cost as a ratio to the floor's.
#
# usage: scale.sh SRCDIR BUILDDIR
# Environment: SCALE_N connections held (default 15000; 50000 needs a
#   descriptor limit above 50,100 per process), SCALE_CHAT_N members of
#   the broadcast rounds (default 10000), SCALE_ROUNDS echo round trips per
#   connection (default 10), SCALE_BCAST_ROUNDS (default 20), SCALE_PORT
#   first of four ports (default 21000), SCALE_THREADS loop threads of
#   the examples and the floor (default: one per CPU);
#   SCALE_TABLE_FROM=FILE prints the table of the
#   output of an earlier run instead of running.
# Every server is stopped by its PID, also when a run fails.
set -u

srcdir=$1
builddir=$2
n=${SCALE_N:-15000}
chat_n=${SCALE_CHAT_N:-10000}
rounds=${SCALE_ROUNDS:-10}
brounds=${SCALE_BCAST_ROUNDS:-20}
port=${SCALE_PORT:-21000}
threads=${SCALE_THREADS:+-t $SCALE_THREADS}
load="$builddir/tests/bench/load"
NODE_PATH="$srcdir/tests/node_modules${NODE_PATH:+:$NODE_PATH}"
export NODE_PATH

# Both sides need a descriptor per connection: raise the soft limit to
# the hard one; the servers inherit it (and raise their own too).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)
if [ "$limit" != unlimited ] && [ "$limit" -lt $((n + 64)) ]; then
  echo "$0: the descriptor limit is $limit: too low for $n connections" >&2
  exit 1
fi

out=$(mktemp)
rows=$(mktemp)
pid=""
cleanup () {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -f "$out" "$rows"
}
trap cleanup EXIT INT TERM

# start PROGRAM ARGS...: runs a server, waits for its URL line, sets pid
# and srv_port.
start () {
  : >"$out"
  "$@" >"$out" 2>&1 &
  pid=$!
  srv_port=""
  i=0
  while [ $i -lt 100 ]; do
    srv_port=$(sed -n '1s|^Serving on http://127\.0\.0\.1:\([0-9][0-9]*\)/$|\1|p' "$out")
    [ -n "$srv_port" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
  done
  echo "$0: $1 did not start:" >&2
  cat "$out" >&2
  exit 1
}

stop () {
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  pid=""
}

# run ROW_NAME LOAD_ARGS...: one load run against the server started last.
run () {
  row=$1
  shift
  echo "---- $row"
  "$load" -P "$pid" -p "$srv_port" -r "$row" "$@" | tee -a "$rows"
  rc=$?
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "$0: the server died during $row" >&2
    exit 1
  fi
  return $rc
}

failed=0
if [ -n "${SCALE_TABLE_FROM:-}" ]; then
  # Only print the table of an earlier run's output.
  cp "$SCALE_TABLE_FROM" "$rows"
else
# shellcheck disable=SC2086
start "$builddir/examples/echo" $threads "$port"
run echo -c "$n" -n "$rounds" || failed=1
stop
# Each floor run right after the example it measures, so that the two
# see the same machine.
# shellcheck disable=SC2086
start "$builddir/tests/bench/floor" $threads "$((port + 3))"
run floor-echo -c "$n" -n "$rounds" || failed=1
stop
# shellcheck disable=SC2086
start "$builddir/examples/chatserver" $threads --no-presence "$((port + 1))"
run chat -c "$chat_n" -m chat -b "$brounds" || failed=1
stop
# shellcheck disable=SC2086
start "$builddir/tests/bench/floor" $threads "$((port + 3))"
run floor-chat -c "$chat_n" -m chat -b "$brounds" -u /chat || failed=1
stop
start node "$srcdir/tests/bench/ws-scale-server.js" "$((port + 2))"
run node-echo -c "$n" -n "$rounds" || failed=1
stop
start node "$srcdir/tests/bench/ws-scale-server.js" "$((port + 2))"
run node-chat -c "$chat_n" -m chat -b "$brounds" -u /chat || failed=1
stop
fi

ws_version=$(node -e "console.log(require('ws/package.json').version)" 2>/dev/null)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo
echo "Scale benchmark, $(date -u +%Y-%m-%d), $cpu, $(nproc) CPUs, descriptor limit $limit, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "echo rounds: $n connections x $rounds round trips (64 B - 4 KiB); broadcast: $chat_n members x $brounds rounds"
awk -v ws="$ws_version" '
  /^ROW / { r[$2] = $0 }
  function f(row, i,   a) { split(r[row], a, " "); return a[i] }
  END {
    printf "%-22s %11s %10s %9s %9s %8s %8s %7s %13s %9s %9s\n", "server",
      "RSS/idle", "MHD pool", "us/echo", "echo/s", "p50 ms", "p99 ms",
      "gen CPU", "deliveries/s", "reach ms", "us/deliv"
    printf "%-22s %9.1f K %10s %9s %9s %8.1f %8.1f %6s%% %13s %9s %9s\n",
      "echo (ours)", f("echo", 4) / 1024, "3072 B", f("echo", 5),
      f("echo", 6), f("echo", 7) / 1000, f("echo", 8) / 1000, f("echo", 9),
      "-", "-", "-"
    printf "%-22s %9.1f K %10s %9s %9s %8.1f %8.1f %6s%% %13s %9s %9s\n",
      "echo floor", f("floor-echo", 4) / 1024, "-", f("floor-echo", 5),
      f("floor-echo", 6), f("floor-echo", 7) / 1000,
      f("floor-echo", 8) / 1000, f("floor-echo", 9), "-", "-", "-"
    printf "%-22s %9.1f K %10s %9s %9s %8s %8s %6s%% %13s %9s %9s\n",
      "chatserver (ours)", f("chat", 4) / 1024, "3072 B", "-", "-", "-", "-",
      f("chat", 9), f("chat", 10), f("chat", 11), f("chat", 12)
    printf "%-22s %9.1f K %10s %9s %9s %8s %8s %6s%% %13s %9s %9s\n",
      "chat floor", f("floor-chat", 4) / 1024, "-", "-", "-", "-", "-",
      f("floor-chat", 9), f("floor-chat", 10), f("floor-chat", 11),
      f("floor-chat", 12)
    printf "%-22s %9.1f K %10s %9s %9s %8.1f %8.1f %6s%% %13s %9s %9s\n",
      "node ws " ws " echo", f("node-echo", 4) / 1024, "-", f("node-echo", 5),
      f("node-echo", 6), f("node-echo", 7) / 1000, f("node-echo", 8) / 1000,
      f("node-echo", 9), "-", "-", "-"
    printf "%-22s %9.1f K %10s %9s %9s %8s %8s %6s%% %13s %9s %9s\n",
      "node ws " ws " chat", f("node-chat", 4) / 1024, "-", "-", "-", "-",
      "-", f("node-chat", 9), f("node-chat", 10), f("node-chat", 11),
      f("node-chat", 12)
    if (f("node-echo", 5) > 0 && f("node-chat", 10) > 0)
      printf "ratios: CPU per echo %.2f of node, echo rate %.2fx node, RSS per idle connection %.2f of node, deliveries/s %.2fx node\n",
        f("echo", 5) / f("node-echo", 5), f("echo", 6) / f("node-echo", 6),
        f("echo", 4) / f("node-echo", 4), f("chat", 10) / f("node-chat", 10)
    if (f("floor-echo", 5) > 0 && f("floor-chat", 12) > 0)
      printf "against the floor: CPU per echo %.3f x floor (target <= 1.10), echo rate %.2f x; CPU per delivery %.3f x floor broadcaster (target <= 1.10), deliveries/s %.2f x\n",
        f("echo", 5) / f("floor-echo", 5), f("echo", 6) / f("floor-echo", 6),
        f("chat", 12) / f("floor-chat", 12), f("chat", 10) / f("floor-chat", 10)
  }' "$rows"
exit $failed
