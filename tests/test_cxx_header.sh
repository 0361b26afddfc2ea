#!/bin/sh
# The public header compiles as C++ (C++11 and C++20, -Wall -Wextra
# -Werror), alone and after <microhttpd.h>, and declares its functions
# with C linkage: a C++ translation unit that takes the address of every
# MHD_websocket_* function the header declares must refer to the plain C
# names, not to C++-mangled ones.  C++ frameworks on libmicrohttpd
# include it so.  Skipped (77) when $CXX compiles no C++ at all.
: "${top_srcdir:=.}"
: "${CXX:=c++}"
: "${NM:=nm}"
header="$top_srcdir/include/microhttpd_ws.h"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cxxhdr.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

echo 'int main () { return 0; }' > "$tmp/empty.cpp"

# Every function the header declares (a name at the start of a line,
# followed by its parameter list).
names=$(sed -n 's/^\(MHD_websocket_[a-z0-9_]*\) (.*/\1/p' "$header" | LC_ALL=C sort -u)
count=$(printf '%s\n' "$names" | grep -c .)
if [ "$count" -lt 20 ]; then
  echo "FAIL: found only $count function names in $header" >&2
  exit 1
fi

# The body uses the header as C++ code does: enumerators combined into
# the int flags, a switch over the status enumeration, every function's
# address.
body="$tmp/body.inc"
{
  echo 'typedef void (*any_fn) ();'
  echo 'static const any_fn every_function[] = {'
  for n in $names; do
    echo "  reinterpret_cast<any_fn> (&$n),"
  done
  echo '};'
  cat <<'EOF'
static int
describe (enum MHD_WEBSOCKET_STATUS s)
{
  switch (s)
  {
  case MHD_WEBSOCKET_STATUS_OK:
    return 0;
  case MHD_WEBSOCKET_STATUS_TEXT_FRAME:
  case MHD_WEBSOCKET_STATUS_BINARY_FRAME:
    return 1;
  default:
    return 2;
  }
}

int
main ()
{
  int flags = MHD_WEBSOCKET_FLAG_SERVER | MHD_WEBSOCKET_FLAG_NO_FRAGMENTS;
  struct MHD_WebSocketStream *ws = 0;
  char answer[MHD_WEBSOCKET_DEFLATE_HEADER_SIZE];
  (void) answer;
  if (MHD_WEBSOCKET_STATUS_OK != MHD_websocket_stream_init (&ws, flags, 0))
    return 1;
  MHD_websocket_stream_free (ws);
  return describe (MHD_WEBSOCKET_STATUS_OK)
         + static_cast<int> (sizeof (every_function) == 0);
}
EOF
} > "$body"

{
  echo '#include <microhttpd_ws.h>'
  echo '#include "body.inc"'
} > "$tmp/alone.cpp"
{
  echo '#include <stdint.h>'
  echo '#include <sys/types.h>'
  echo '#include <sys/socket.h>'
  echo '#include <microhttpd.h>'
  echo '#include <microhttpd_ws.h>'
  echo '#include "body.inc"'
} > "$tmp/after_mhd.cpp"

fail=0
ran=0
for std in c++11 c++20; do
  if ! $CXX -std=$std -c -o "$tmp/empty.o" "$tmp/empty.cpp" 2>/dev/null; then
    echo "skipped: '$CXX' has no -std=$std"
    continue
  fi
  for tu in alone after_mhd; do
    extra=
    [ "$tu" = alone ] && extra=-pedantic
    ran=$((ran + 1))
    # shellcheck disable=SC2086 # MHD_CFLAGS is a list of flags
    if ! $CXX -std=$std -Wall -Wextra -Werror $extra -I"$top_srcdir/include" \
         ${MHD_CFLAGS:-} -c -o "$tmp/$tu.o" "$tmp/$tu.cpp" 2>"$tmp/err"; then
      echo "FAIL: $header as $std ($tu):" >&2
      cat "$tmp/err" >&2
      fail=1
      continue
    fi
    # C linkage: the unmangled names are undefined references.
    undef=$($NM -u "$tmp/$tu.o" | awk '{ print $NF }' | grep '^MHD_websocket_' \
            | LC_ALL=C sort -u)
    if [ "$undef" != "$names" ]; then
      echo "FAIL: $std ($tu): the object does not refer to the C names:" >&2
      $NM -u "$tmp/$tu.o" | grep -i websocket >&2
      fail=1
      continue
    fi
    echo "ok: $std ($tu): $count functions with C linkage"
  done
done
if [ "$ran" -eq 0 ]; then
  echo "SKIP: '$CXX' compiles neither -std=c++11 nor -std=c++20 (no C++ compiler?)"
  exit 77
fi
exit $fail
