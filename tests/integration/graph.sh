#!/usr/bin/env bash
# meshctl graph: DOT that Graphviz accepts, one edge per connector (address
# space), down connectors and servers marked, rendering to SVG and PNG.
set -u
ctl=$1 org=$2
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
pass=0 fail=0
say() { if [ "$1" = 0 ]; then pass=$((pass+1)); echo "ok   $2"; else fail=$((fail+1)); echo "FAIL $2"; fi; }
g() { "$ctl" --directory "ldif:$org" "$@"; }

g graph >"$d/g.dot"; say $? "graph prints DOT"
dot -Tplain "$d/g.dot" >"$d/g.plain" 2>"$d/dot.err"; say $? "Graphviz accepts it"
edges=$(grep -c '^edge' "$d/g.plain")
# contoso: six routing-group connectors, two SMTP connectors with one address space each
[ "$edges" = 8 ]; say $? "one edge per connector: $edges"
grep -q 'SEA-NYC (10)' "$d/g.dot" && ! grep 'SEA-NYC (10)' "$d/g.dot" | grep -q dashed
say $? "an up connector drawn plain"
g --down NYC-LON graph | grep 'NYC-LON (10)' | grep -q 'style=dashed'
say $? "--down NYC-LON: that connector dashed and red"
g --down SEA-02 graph | grep '"s:SEA-02"' | grep -q 'color=red'
say $? "--down SEA-02: that server red"
g graph --output "$d/t.svg" && grep -q '<svg' "$d/t.svg" && grep -q 'Seattle' "$d/t.svg"
say $? "rendered to SVG"
g graph --output "$d/t.png" && [ "$(head -c 4 "$d/t.png" | od -An -c | tr -d ' ')" = '211PNG' ]
say $? "rendered to PNG"
g graph --output "$d/t.txt" 2>/dev/null; [ $? = 64 ]; say $? "--output with another extension: exit 64"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
