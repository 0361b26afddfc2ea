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
#   SCALE_PAIRS runs of each example and its floor, in turn (default 1;
#   the table shows medians); SCALE_TABLE_FROM=FILE prints the table of the
#   output of an earlier run instead of running.
# wss:// rows (echo --cert --key against node ws over https, load -T,
#   a self-signed certificate made by openssl): SCALE_WSS_N connections
#   (default 2000, 0 for no wss rows; on libmicrohttpd 0.9.x, whose TLS
#   relay moves 4 bytes at a time, the default is 0 with a note, and 1 MiB
#   messages are more chunks than node's ws client takes), SCALE_WSS_ROUNDS
#   round trips each
#   (default SCALE_ROUNDS), SCALE_BULK_ROUNDS 1 MiB echoes timed by
#   tests/bench/bulk-echo.js (default 10; the median is shown).
# Every server is stopped by its PID, also when a run fails.
set -u

srcdir=$1
builddir=$2
n=${SCALE_N:-15000}
chat_n=${SCALE_CHAT_N:-10000}
rounds=${SCALE_ROUNDS:-10}
brounds=${SCALE_BCAST_ROUNDS:-20}
port=${SCALE_PORT:-21000}
# The libmicrohttpd that examples/echo loads, and the pool that
# examples/common/daemon.c gives a TLS daemon on it (ex_tls_pool_size()).
mhd=$(/usr/bin/python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import example_server as e; print(e.mhd_version(sys.argv[2]))' \
  "$srcdir/tests/interop" "$builddir" 2>/dev/null)
case $mhd in
  0.*) tls_pool="3072 B"; wss_default=0 ;;
  "") tls_pool="?"; wss_default=2000 ;;
  *) tls_pool="36864 B"; wss_default=2000 ;;
esac
wss_n=${SCALE_WSS_N:-$wss_default}
wss_rounds=${SCALE_WSS_ROUNDS:-$rounds}
bulk_rounds=${SCALE_BULK_ROUNDS:-10}
threads=${SCALE_THREADS:+-t $SCALE_THREADS}
pairs=${SCALE_PAIRS:-1}
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
tlsdir=$(mktemp -d)
pid=""
cleanup () {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -f "$out" "$rows"
  rm -rf "$tlsdir"
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
    srv_port=$(sed -n '1s|^Serving on https*://127\.0\.0\.1:\([0-9][0-9]*\)/$|\1|p' "$out")
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

# bulk ROW_NAME: the 1 MiB echo time against the server started last
# (wss://), one "BULKROW ROW MEDIAN_MS FASTEST_MS" line.
bulk () {
  echo "---- $1: 1 MiB echo x $bulk_rounds"
  if ! b=$(node "$srcdir/tests/bench/bulk-echo.js" \
      "wss://127.0.0.1:$srv_port/" "$bulk_rounds"); then
    echo "BULKROW $1 failed" >>"$rows"
    return 1
  fi
  echo "$b"
  echo "BULKROW $1 ${b#BULK }" >>"$rows"
}

failed=0
if [ -n "${SCALE_TABLE_FROM:-}" ]; then
  # Only print the table of an earlier run's output.
  cp "$SCALE_TABLE_FROM" "$rows"
else
# Each floor run right after the example it measures, so that the two
# see the same machine; SCALE_PAIRS times.
k=0
while [ $k -lt "$pairs" ]; do
  # shellcheck disable=SC2086
  start "$builddir/examples/echo" $threads "$port"
  run echo -c "$n" -n "$rounds" || failed=1
  stop
  # shellcheck disable=SC2086
  start "$builddir/tests/bench/floor" $threads "$((port + 3))"
  run floor-echo -c "$n" -n "$rounds" || failed=1
  stop
  k=$((k + 1))
done
k=0
while [ $k -lt "$pairs" ]; do
  # shellcheck disable=SC2086
  start "$builddir/examples/chatserver" $threads --no-presence "$((port + 1))"
  run chat -c "$chat_n" -m chat -b "$brounds" || failed=1
  stop
  # shellcheck disable=SC2086
  start "$builddir/tests/bench/floor" $threads "$((port + 3))"
  run floor-chat -c "$chat_n" -m chat -b "$brounds" -u /chat || failed=1
  stop
  k=$((k + 1))
done
start node "$srcdir/tests/bench/ws-scale-server.js" "$((port + 2))"
run node-echo -c "$n" -n "$rounds" || failed=1
stop
start node "$srcdir/tests/bench/ws-scale-server.js" "$((port + 2))"
run node-chat -c "$chat_n" -m chat -b "$brounds" -u /chat || failed=1
stop
if [ "$wss_n" -gt 0 ]; then
  cert="$tlsdir/cert.pem"
  key="$tlsdir/key.pem"
  if ! openssl req -x509 -newkey rsa:2048 -nodes -keyout "$key" \
      -out "$cert" -days 2 -subj /CN=127.0.0.1 >/dev/null 2>&1; then
    echo "$0: openssl req failed: no wss rows" >&2
    exit 1
  fi
  # shellcheck disable=SC2086
  start "$builddir/examples/echo" $threads --cert "$cert" --key "$key" \
    "$((port + 3))"
  run echo-wss -T -c "$wss_n" -n "$wss_rounds" || failed=1
  bulk echo-wss || failed=1
  stop
  start node "$srcdir/tests/bench/ws-scale-server.js" --cert "$cert" \
    --key "$key" "$((port + 4))"
  run node-echo-wss -T -c "$wss_n" -n "$wss_rounds" || failed=1
  bulk node-echo-wss || failed=1
  stop
fi
fi

ws_version=$(node -e "console.log(require('ws/package.json').version)" 2>/dev/null)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo
echo "Scale benchmark, $(date -u +%Y-%m-%d), $cpu, $(nproc) CPUs, descriptor limit $limit, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "echo rounds: $n connections x $rounds round trips (64 B - 4 KiB); broadcast: $chat_n members x $brounds rounds"
awk -v ws="$ws_version" '
  # ROW NAME CONNS RSS/CONN US/ECHO ECHO/S P50 P99 GEN% DELIV/S REACH
  # US/DELIV USER-US (load.c; the last field is user CPU alone, per
  # message or delivery, and missing from older outputs).  User CPU is
  # given in microseconds, not as a ratio: at 10 ms ticks the floor has
  # only a few of them, and the difference is what a server adds.
  # Every ROW line of a row name (SCALE_PAIRS repeats some); the table
  # shows the median of each column, the ratios to the floor are also
  # given pair by pair.
  /^ROW / { k = ++cnt[$2]; for (i = 1; i <= NF; i++) v[$2, k, i] = $i }
  function f(row, i,   a, m, k, j, t) {
    m = cnt[row]
    if (m == 0)
      return 0
    for (k = 1; k <= m; k++) {
      t = v[row, k, i] + 0
      for (j = k - 1; j >= 1 && a[j] > t; j--)
        a[j + 1] = a[j]
      a[j + 1] = t
    }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  function echo_row(label, row, pool) {
    if (cnt[row] == 0)
      return
    printf "%-22s %9.1f K %10s %9.1f %9.0f %8.1f %8.1f %6.0f%% %13s %9s %9s\n",
      label, f(row, 4) / 1024, pool, f(row, 5), f(row, 6), f(row, 7) / 1000,
      f(row, 8) / 1000, f(row, 9), "-", "-", "-"
  }
  function chat_row(label, row, pool) {
    if (cnt[row] == 0)
      return
    printf "%-22s %9.1f K %10s %9s %9s %8s %8s %6.0f%% %13.0f %9.1f %9.2f\n",
      label, f(row, 4) / 1024, pool, "-", "-", "-", "-", f(row, 9),
      f(row, 10), f(row, 11), f(row, 12)
  }
  # The ratio of column i of row a to row b: the median of the ratios of
  # the pairs run in turn, and each of them.
  function pairs(a, b, i,   k, s, m, n, r, j, t) {
    m = (cnt[a] < cnt[b]) ? cnt[a] : cnt[b]
    s = ""
    n = 0
    for (k = 1; k <= m; k++)
      if (v[b, k, i] > 0) {
        t = v[a, k, i] / v[b, k, i]
        s = s sprintf(" %.3f", t)
        for (j = n; j >= 1 && r[j] > t; j--)
          r[j + 1] = r[j]
        r[j + 1] = t
        n++
      }
    if (n == 0)
      return "-"
    t = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
    return sprintf("%.3f", t) ((n > 1) ? " (pairs:" s ")" : "")
  }
  function user(a, b, what) {
    if (v[a, 1, 13] == "")
      return ""
    return sprintf("; user CPU per %s %.2f us against %.2f", what, f(a, 13),
      f(b, 13))
  }
  END {
    printf "%-22s %11s %10s %9s %9s %8s %8s %7s %13s %9s %9s\n", "server",
      "RSS/idle", "MHD pool", "us/echo", "echo/s", "p50 ms", "p99 ms",
      "gen CPU", "deliveries/s", "reach ms", "us/deliv"
    echo_row("echo (ours)", "echo", "3072 B")
    echo_row("echo floor", "floor-echo", "-")
    chat_row("chatserver (ours)", "chat", "3072 B")
    chat_row("chat floor", "floor-chat", "-")
    echo_row("node ws " ws " echo", "node-echo", "-")
    chat_row("node ws " ws " chat", "node-chat", "-")
    if (f("node-echo", 5) > 0 && f("node-chat", 10) > 0)
      printf "ratios: CPU per echo %.2f of node, echo rate %.2fx node, RSS per idle connection %.2f of node, deliveries/s %.2fx node\n",
        f("echo", 5) / f("node-echo", 5), f("echo", 6) / f("node-echo", 6),
        f("echo", 4) / f("node-echo", 4), f("chat", 10) / f("node-chat", 10)
    if (f("floor-echo", 5) > 0)
      printf "echo / floor: CPU per message %s (target <= 1.10), echo rate %s%s\n",
        pairs("echo", "floor-echo", 5), pairs("echo", "floor-echo", 6),
        user("echo", "floor-echo", "message")
    if (f("floor-chat", 12) > 0)
      printf "chat / floor broadcaster: CPU per delivery %s (target <= 1.10), deliveries/s %s%s\n",
        pairs("chat", "floor-chat", 12), pairs("chat", "floor-chat", 10),
        user("chat", "floor-chat", "delivery")
  }' "$rows"
if [ "$wss_n" -eq 0 ] && [ -z "${SCALE_WSS_N:-}" ]; then
  echo
  echo "wss:// rows skipped: libmicrohttpd $mhd relays TLS 4 bytes at a time (SCALE_WSS_N=2000 runs them anyway)"
fi
if grep -q '^ROW echo-wss ' "$rows"; then
  echo
  echo "wss:// (TLS), libmicrohttpd ${mhd:-?}: $(sed -n 's/^ROW echo-wss \([0-9]*\) .*/\1/p' "$rows") connections x $wss_rounds round trips (64 B - 4 KiB); 1 MiB echo: median of $bulk_rounds (node ws client)"
  awk -v ws="$ws_version" -v pool="$tls_pool" '
    /^ROW / { r[$2] = $0 }
    /^BULKROW / { b[$2] = $3 }
    function f(row, i,   a) { split(r[row], a, " "); return a[i] }
    END {
      printf "%-22s %11s %10s %9s %9s %8s %8s %7s %11s\n", "server",
        "RSS/idle", "MHD pool", "us/echo", "echo/s", "p50 ms", "p99 ms",
        "gen CPU", "1 MiB echo"
      printf "%-22s %9.1f K %10s %9s %9s %8.1f %8.1f %6s%% %8s ms\n",
        "echo wss (ours)", f("echo-wss", 4) / 1024, pool, f("echo-wss", 5),
        f("echo-wss", 6), f("echo-wss", 7) / 1000, f("echo-wss", 8) / 1000,
        f("echo-wss", 9), b["echo-wss"]
      printf "%-22s %9.1f K %10s %9s %9s %8.1f %8.1f %6s%% %8s ms\n",
        "node ws " ws " wss echo", f("node-echo-wss", 4) / 1024, "-",
        f("node-echo-wss", 5), f("node-echo-wss", 6),
        f("node-echo-wss", 7) / 1000, f("node-echo-wss", 8) / 1000,
        f("node-echo-wss", 9), b["node-echo-wss"]
      if (f("node-echo-wss", 5) > 0 && b["node-echo-wss"] > 0 &&
          b["echo-wss"] > 0)
        printf "ratios: 1 MiB echo time %.2f of node (target 1.5 at most), CPU per echo %.2f of node (target 1 at most), RSS per idle connection %.2f of node\n",
          b["echo-wss"] / b["node-echo-wss"],
          f("echo-wss", 5) / f("node-echo-wss", 5),
          f("echo-wss", 4) / f("node-echo-wss", 4)
    }' "$rows"
fi
exit $failed
