#!/bin/sh
# The calls between the library's source files go down the layers listed
# at the top of src/internal.h (issue 19), and never round in a circle.
#
# The call graph is derived from the object files: file A calls file B
# when A's object leaves undefined a symbol that B's object defines.  The
# check fails when a file calls a file of a higher layer, when the calls
# form a cycle (within a layer too), when a source file is in no layer or
# a listed one does not exist, or when an object file is missing.
: "${top_srcdir:=.}"
: "${top_builddir:=.}"
: "${NM:=nm}"

list="$top_srcdir/src/internal.h"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0

# "file layer" pairs from the " *   layer N: a.c b.c" lines.
sed -n 's/^ \*   layer \([0-9][0-9]*\): *\(.*\)$/\1 \2/p' "$list" |
  while read -r n files; do
    for f in $files; do
      echo "$f $n"
    done
  done | LC_ALL=C sort > "$tmp/layers"
if [ ! -s "$tmp/layers" ]; then
  echo "FAIL: no layer list in $list" >&2
  exit 1
fi
dups=$(cut -d' ' -f1 "$tmp/layers" | uniq -d)
if [ -n "$dups" ]; then
  echo "FAIL: in more than one layer: $dups" >&2
  fail=1
fi

# Every source file is placed, and every placed file exists.
(cd "$top_srcdir/src" && ls -- *.c) | LC_ALL=C sort > "$tmp/sources"
cut -d' ' -f1 "$tmp/layers" | LC_ALL=C sort -u > "$tmp/listed"
for f in $(LC_ALL=C comm -23 "$tmp/sources" "$tmp/listed"); do
  echo "FAIL: src/$f is in no layer of $list" >&2
  fail=1
done
for f in $(LC_ALL=C comm -13 "$tmp/sources" "$tmp/listed"); do
  echo "FAIL: $list lists $f, which is not in src/" >&2
  fail=1
done

# The symbols each object defines and leaves undefined ("file symbol").
: > "$tmp/defs"
: > "$tmp/uses"
while read -r f n; do
  base=${f%.c}
  obj="$top_builddir/src/.libs/libws_core_la-$base.o"
  [ -f "$obj" ] || obj="$top_builddir/src/libws_core_la-$base.o"
  if [ ! -f "$obj" ]; then
    echo "FAIL: no object file for src/$f (build the library first)" >&2
    fail=1
    continue
  fi
  $NM -P --defined-only "$obj" |
    awk -v f="$f" '$2 ~ /^[A-Z]$/ { print f, $1 }' >> "$tmp/defs"
  $NM -P --undefined-only "$obj" | awk -v f="$f" '{ print f, $1 }' >> "$tmp/uses"
done < "$tmp/layers"

# Edges "caller callee symbol", then their layers.
awk 'FNR == NR { def[$2] = $1; next }
     ($2 in def) && def[$2] != $1 { print $1, def[$2], $2 }' \
  "$tmp/defs" "$tmp/uses" | LC_ALL=C sort > "$tmp/calls"
if [ ! -s "$tmp/calls" ]; then
  echo "FAIL: no calls found between the object files" >&2
  exit 1
fi
awk 'FNR == NR { layer[$1] = $2; next }
     layer[$1] < layer[$2] {
       printf "FAIL: %s (layer %d) calls %s of %s (layer %d)\n",
              $1, layer[$1], $3, $2, layer[$2]
     }' "$tmp/layers" "$tmp/calls" > "$tmp/up"
if [ -s "$tmp/up" ]; then
  cat "$tmp/up" >&2
  fail=1
fi

# A cycle: tsort finds one whatever the layers say.
cut -d' ' -f1,2 "$tmp/calls" | LC_ALL=C sort -u > "$tmp/edges"
if ! tsort "$tmp/edges" > /dev/null 2> "$tmp/tsort"; then
  echo "FAIL: the calls between src/*.c form a cycle:" >&2
  cat "$tmp/tsort" >&2
  fail=1
fi

echo "calls between src/*.c (caller -> callees):"
awk '{ c[$1] = c[$1] " " $2 } END { for (f in c) print "  " f " ->" c[f] }' \
  "$tmp/edges" | LC_ALL=C sort
if [ 0 != "$fail" ]; then
  exit 1
fi
echo "PASS: $(wc -l < "$tmp/edges") file-to-file calls, all downward, no cycle"
