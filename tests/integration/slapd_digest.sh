#!/usr/bin/env bash
# A real slapd (mdb, generated config, loopback, free port) with
# conf/mailmesh.schema; the example organization loaded with ldapadd; the
# LDAP load and the LDIF load must give the same table digest and routes.
set -u
ctl=$1 org=$2 schema=$3
SLAPD=$(command -v slapd || echo /usr/sbin/slapd)
d=$(mktemp -d); pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$d"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$d/db"
cat > "$d/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include $schema
pidfile $d/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 104857600
suffix "o=Contoso"
rootdn "cn=admin,o=Contoso"
rootpw secret
directory $d/db
CONF
pass=0 fail=0
say() { if [ "$1" = 0 ]; then pass=$((pass+1)); echo "ok   $2"; else fail=$((fail+1)); echo "FAIL $2"; fi; }
"$SLAPD" -T test -f "$d/slapd.conf" -u >"$d/test.log" 2>&1; rc=$?
say $rc "the schema loads into a stock slapd"; [ $rc = 0 ] || { cat "$d/test.log"; echo "$pass passed, $fail failed"; exit 1; }
"$SLAPD" -f "$d/slapd.conf" -h "ldap://127.0.0.1:$port/" -d 0 2>"$d/slapd.log" &
pid=$!
for i in $(seq 100); do ldapwhoami -x -H "ldap://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
ldapadd -x -H "ldap://127.0.0.1:$port/" -D cn=admin,o=Contoso -w secret -f "$org" >"$d/add.log" 2>&1
say $? "ldapadd of the example organization"
digest() { "$ctl" --directory "$1" table --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])'; }
a=$(digest "ldif:$org"); b=$(digest "ldap://127.0.0.1:$port/o=Contoso")
[ -n "$a" ] && [ "$a" = "$b" ]; say $? "LDIF and LDAP give the same digest ($a / $b)"
for r in alice@contoso.test erin@contoso.test x@army.mil x@example.org; do
  x=$("$ctl" --directory "ldif:$org" --down NYC-LON route --from NYC-02 "$r" --json)
  y=$("$ctl" --directory "ldap://127.0.0.1:$port/o=Contoso" --down NYC-LON route --from NYC-02 "$r" --json)
  [ -n "$x" ] && [ "$x" = "$y" ]; say $? "same route for $r"
done
# a bind DN and password file
echo secret > "$d/pw"
c=$(digest "ldap://127.0.0.1:$port/o=Contoso????bindname=cn=admin%2co=Contoso,x-pwfile=$d/pw")
[ "$a" = "$c" ]; say $? "bound with a password file: same digest"
# the server gone: unavailable (69), not bad data
kill "$pid"; wait "$pid" 2>/dev/null; pid=
"$ctl" --directory "ldap://127.0.0.1:$port/o=Contoso" table >/dev/null 2>&1
[ $? = 69 ]; say $? "slapd down: exit 69"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
