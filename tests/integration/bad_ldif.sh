#!/usr/bin/env bash
# Broken directories: one clear error per problem with file:line, exit 65.
set -u
ctl=$1 org=$2
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
pass=0 fail=0
expect() { # name, file, grep pattern for stderr
  "$ctl" check "$2" >/dev/null 2>"$d/err"; rc=$?
  if [ $rc -eq 65 ] && grep -Eq "$3" "$d/err"; then pass=$((pass+1)); echo "ok   $1"
  else fail=$((fail+1)); echo "FAIL $1: exit $rc"; cat "$d/err"; fi
}
sed 's/^mmCost: 40$/mmCost: 0/' "$org" > "$d/cost.ldif"
expect "cost 0" "$d/cost.ldif" 'cost\.ldif:[0-9]+: connector SEA-LON: mmCost 0 is outside 1\.\.100'
sed 's/^mmRemoteBridgehead: cn=SMTP,cn=LON-01,/mmRemoteBridgehead: cn=SMTP,cn=LON-09,/' "$org" > "$d/dangling.ldif"
expect "dangling bridgehead" "$d/dangling.ldif" 'dangling\.ldif:[0-9]+: connector NYC-LON: mmRemoteBridgehead .* names no entry'
sed 's/^mmLocalBridgehead: cn=SMTP,cn=SEA-02,cn=Seattle,o=Contoso$/mmLocalBridgehead: cn=SEA-02,cn=Seattle,o=Contoso/' "$org" > "$d/notvs.ldif"
expect "bridgehead not a virtual server" "$d/notvs.ldif" 'notvs\.ldif:[0-9]+: .*is a server, not a virtual server'
sed 's/^cn: SEA-03$/cn: SEA-01/' "$org" > "$d/dup.ldif"
expect "duplicate name" "$d/dup.ldif" 'dup\.ldif:[0-9]+: two servers named SEA-01'
sed 's/^mmAddressSpace: smtp:\*\.mil$/mmAddressSpace: smtp:*.m!l/' "$org" > "$d/space.ldif"
expect "unparsable address space" "$d/space.ldif" 'space\.ldif:[0-9]+: connector LON-Mil: mmAddressSpace'
grep -v '^objectClass: mmMaster' "$org" | awk 'BEGIN{RS="";ORS="\n\n"} !/cn=LON-RGM/' > "$d/nomaster.ldif"
expect "group without master" "$d/nomaster.ldif" 'routing group London has no master candidate'
# all four problems at once: four errors, each with its own line
sed -e 's/^mmCost: 40$/mmCost: 0/' -e 's/^cn: SEA-03$/cn: SEA-01/' \
    -e 's/^mmAddressSpace: smtp:\*\.mil$/mmAddressSpace: smtp:*.m!l/' \
    -e 's/^mmRemoteBridgehead: cn=SMTP,cn=LON-01,/mmRemoteBridgehead: cn=SMTP,cn=LON-09,/' "$org" > "$d/all.ldif"
"$ctl" check "$d/all.ldif" >/dev/null 2>"$d/err"; rc=$?
n=$(grep -Ec '^[^ ]*all\.ldif:[0-9]+: ' "$d/err")
if [ $rc -eq 65 ] && [ "$n" -ge 5 ]; then pass=$((pass+1)); echo "ok   every problem reported ($n lines)"
else fail=$((fail+1)); echo "FAIL every problem reported: exit $rc, $n lines"; cat "$d/err"; fi
# the route command refuses bad data whole too
"$ctl" --directory "ldif:$d/cost.ldif" table >/dev/null 2>&1; rc=$?
if [ $rc -eq 65 ]; then pass=$((pass+1)); echo "ok   table on bad data exits 65"; else fail=$((fail+1)); echo "FAIL table on bad data: exit $rc"; fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
