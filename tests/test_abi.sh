#!/bin/sh
# The public header must match the published libmicrohttpd_ws API (every
# enum value, typedef and signature) and compile on its own: the
# project's abi-check (configure --with-abi-check) proves both.
: "${top_srcdir:=.}"
if [ -z "$ABI_CHECK" ] || [ ! -x "$ABI_CHECK" ]; then
  if [ -n "$CI" ]; then
    echo "FAIL: abi-check not found at '$ABI_CHECK'" >&2
    exit 1
  fi
  echo "SKIP: abi-check not found at '$ABI_CHECK' (configure --with-abi-check)"
  exit 77
fi
exec "$ABI_CHECK" "$top_srcdir/include"
