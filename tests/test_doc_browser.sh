#!/bin/sh
# This file is part of libmicrohttpd_ws.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The manual's browser client (doc/examples/browser.js) against the
# manual's echo server, under node with the ws package standing in for
# the browser's WebSocket.  Skips (77) without node or the npm packages
# of tests/package.json.
set -u
srcdir=$(cd "${top_srcdir:-.}" && pwd)
builddir=${top_builddir:-.}
server=$builddir/doc/examples/echo_server

# The Debian package build (debian/rules) has no tests/node_modules and
# keeps its make check free of node: it sets MHDWS_NO_NODE_TESTS.
if [ -n "${MHDWS_NO_NODE_TESTS:-}" ]; then
  echo "SKIP: MHDWS_NO_NODE_TESTS is set (Debian package build)"
  exit 77
fi
command -v node > /dev/null 2>&1 || { echo "SKIP: node not found"; exit 77; }
NODE_PATH=$srcdir/tests/node_modules${NODE_PATH:+:$NODE_PATH}
export NODE_PATH
node -e "require('ws')" > /dev/null 2>&1 \
  || { echo "SKIP: the ws package is not installed (npm ci --prefix tests)"; exit 77; }
[ -x "$server" ] || { echo "FAIL: $server was not built"; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup () {
  if [ -n "$pid" ]; then
    kill "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

"$server" 0 > "$tmp/out" 2> "$tmp/err" &
pid=$!
port=
i=0
while [ $i -lt 100 ] && [ -z "$port" ]; do
  port=$(sed -n 's|^Serving on http://127\.0\.0\.1:\([0-9]*\)/$|\1|p' "$tmp/out")
  [ -n "$port" ] || sleep 0.1
  i=$((i + 1))
done
if [ -z "$port" ]; then
  echo "FAIL: the echo server did not start"
  cat "$tmp/err"
  exit 1
fi

timeout 30 node "$srcdir/doc/examples/test_browser.js" \
  "$srcdir/doc/examples/browser.js" "ws://127.0.0.1:$port/"
