#!/bin/sh
# Builds the libFuzzer harnesses with the library sources compiled in, so
# the sanitizers instrument the library too.
# Usage: tests/fuzz/build.sh SRCDIR BUILDDIR OUTDIR
#   SRCDIR   top of the source tree (holds include/ and src/)
#   BUILDDIR a configured build tree (holds config.h)
#   OUTDIR   where fuzz_decode, fuzz_roundtrip, fuzz_handshake,
#            fuzz_inflate and fuzz_session go
set -eu
if [ $# -ne 3 ]; then
  echo "usage: $0 SRCDIR BUILDDIR OUTDIR" >&2
  exit 2
fi
SRCDIR=$1
BUILDDIR=$2
OUTDIR=$3
CC=${CC:-clang}
if [ ! -f "$BUILDDIR/config.h" ]; then
  echo "$0: no config.h in $BUILDDIR (run configure there first)" >&2
  exit 1
fi
mkdir -p "$OUTDIR"
# Every library source but the loop layer's (loop.c, upgrade.c): they
# need libmicrohttpd and threads, and no harness reaches them.
SOURCES=
for f in "$SRCDIR"/src/*.c; do
  case "$f" in
    */loop.c | */upgrade.c) ;;
    *) SOURCES="$SOURCES $f" ;;
  esac
done
for h in decode roundtrip handshake inflate session; do
  echo "building $OUTDIR/fuzz_$h"
  # WS_DEBUG: the library's internal invariant checks abort too.
  $CC -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -DWS_DEBUG=1 \
    -I"$SRCDIR/include" -I"$SRCDIR/src" -I"$BUILDDIR" \
    -o "$OUTDIR/fuzz_$h" "$SRCDIR/tests/fuzz/fuzz_$h.c" $SOURCES \
    -lcrypto -lz
done
