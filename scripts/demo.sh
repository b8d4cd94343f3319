#!/usr/bin/env bash
# Install, build, and show the example organization: its link-state table
# and how mail routes, before and after a connector goes down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build >/dev/null && cmake --build build -j"$(nproc)" >/dev/null
org=examples/orgs/contoso.ldif
ctl() { ./build/cli/meshctl --directory "ldif:$org" "$@"; }
ctl table
for r in alice@contoso.test erin@contoso.test someone@army.mil someone@example.org; do
  echo; ctl route --from NYC-02 "$r"
done
echo; echo "# NewYork -> London (NYC-LON) down: mail for London takes the costlier backup"
ctl --down NYC-LON route --from SEA-01 erin@contoso.test

# The mail path, live: one meshnode per server of the organization on its
# own loopback address, mail from Seattle to London and to the Internet.
echo; echo "# live: 6 rgmaster and 8 meshnode processes over mutual TLS,"
echo "# mail alice@SEA-01 -> erin@LON-01 and -> the Internet"
work=$(mktemp -d /tmp/mailmesh-demo.XXXXXX)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'stop; rm -rf "$work"' EXIT
chmod 755 "$work"
servers="SEA-01 SEA-02 SEA-03 NYC-01 NYC-02 NYC-03 LON-01 LON-02"
masters="SEA-RGM1 SEA-RGM2 NYC-RGM1 NYC-RGM2 LON-RGM1 LON-RGM2"
# a failed delivery counts at once and a down hop is probed every second
# (the defaults are Exchange's minutes)
fast="--set glitch_retry_count=1 --set glitch_retry_interval_ms=500 --set down_probe_interval_ms=1000 --set retry_min_ms=1000"
# the organization's CA, and one --tls directory per daemon (the CA key stays in ca/)
./build/cli/meshctl pki init --dir "$work/ca" --org Contoso >/dev/null
ctl pki issue --dir "$work/ca" $servers $masters admin >/dev/null
for n in $servers $masters admin; do
  mkdir "$work/tls-$n" && cp "$work/ca/ca.pem" "$work/ca/$n.pem" "$work/ca/$n.key" "$work/tls-$n/"
done
wait_ready() { for _ in $(seq 100); do grep -q ready "$1" 2>/dev/null && return; sleep 0.05; done; }
sink() { smtp-sink -u nobody -c 127.0.0.1:2526 64 >>"$work/sink.log" 2>&1 & sink_pid=$!; pids+=($!); }
sink
for m in $masters; do
  ./build/rgmaster/rgmaster --directory "ldif:$org" --name "$m" --state "$work/state-$m" \
    --tls "$work/tls-$m" --log "$work/$m.log" >"$work/$m.ready" & pids+=($!)
  eval "pid_$(echo "$m" | tr - _)=$!"
done
start_node() {
  ./build/node/meshnode --directory "ldif:$org" --server "$1" --spool "$work/$1" \
    --tls "$work/tls-$1" --log "$work/$1.log" $fast >"$work/$1.ready" & pids+=($!)
  eval "pid_$(echo "$1" | tr - _)=$!"
}
for s in $servers; do start_node "$s"; done
for n in $masters $servers; do wait_ready "$work/$n.ready"; done
live() { ./build/cli/meshctl --connect "$1" --tls "$work/tls-admin" "${@:2}"; }
addrs="127.0.1.1 127.0.1.2 127.0.1.3 127.0.2.1 127.0.2.2 127.0.2.3 127.0.3.1 127.0.3.2"
digests() { # what each server believes, WinRoute-style: one digest when converged
  for a in $addrs; do
    live "$a:691" --json table 2>/dev/null | python3 -c 'import json,sys; t=json.load(sys.stdin); g={x["name"]: x for x in t["groups"]}; print("  %-7s digest %s  " % (t["server"], t["digest"][:16]) + ", ".join("%s %d.%d.%d.%d by %s" % ((n,) + tuple(g[n]["versions"][k] for k in ("incarnation", "major", "minor", "user")) + (g[n]["signed_by"],)) for n in ("Seattle", "NewYork", "London")))' 2>/dev/null ||
      echo "  $a: not answering"
  done
}
converged() { # every server answers with one digest, every group's entry signed by its master
  for a in $addrs; do live "$a:691" --json table 2>/dev/null || echo '{}'; echo; done | python3 -c '
import json, sys
ts = [json.loads(l) for l in sys.stdin if l.strip()]
if any("digest" not in t for t in ts) or len({t["digest"] for t in ts}) != 1:
    sys.exit(1)
sys.exit(0 if all(g["signed_by"] for t in ts for g in t["groups"]) else 1)'
}
state_at() { # state_at ADDR KIND NAME: a connector's or a server's state in ADDR's live table
  live "$1:691" --json table 2>/dev/null | python3 -c '
import json, sys
t, kind, name = json.load(sys.stdin), sys.argv[1], sys.argv[2]
for g in t["groups"]:
    for x in g[kind + "s"]:
        if x["name"] == name:
            print(x["state"])' "$2" "$3"
}
wait_state() { for _ in $(seq 300); do [ "$(state_at "$1" "$2" "$3")" = "$4" ] && return; sleep 0.1; done; }
for _ in $(seq 300); do converged && break; sleep 0.1; done
python3 - <<'PY'
import smtplib
c = smtplib.SMTP("127.0.1.1", 25)
c.sendmail("alice@contoso.test", ["erin@contoso.test", "someone@example.org"],
           "Subject: hello from Seattle\r\n\r\nVia New York to London, and out.\r\n")
c.quit()
PY
for _ in $(seq 100); do
  ls "$work"/LON-01/mailstore/erin@contoso.test/new/* >/dev/null 2>&1 &&
    grep -q 'mesg=1' <(tr '\r' '\n' <"$work/sink.log") && break
  sleep 0.1
done
sleep 1.2 # the tracking logs flush once a second
for s in $servers; do
  [ -s "$work/$s/tracking.log" ] && { echo "-- $s tracking.log"; cut -c12- "$work/$s/tracking.log"; }
done
echo "-- erin's mailbox on LON-01:"
cat "$work"/LON-01/mailstore/erin@contoso.test/new/*
echo "-- SEA-01 queues:"
./build/cli/meshctl --spool "$work/SEA-01" queues
echo; echo "-- the live table as LON-01 holds it (meshctl --connect 127.0.3.1:691):"
live 127.0.3.1:691 table | head -16
echo "-- every server's digest: one for the whole organization, each group's entry signed by"
echo "   its master and carried between groups by the bridgeheads over X-LINK2STATE:"
digests

echo; echo "# Seattle's smart host (SEA-Internet, bridgehead SEA-03) stops answering: SEA-03"
echo "# reports it down, Seattle's master issues a new entry, and London sees it"
kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true
python3 - <<'PY'
import smtplib
c = smtplib.SMTP("127.0.1.1", 25)
c.sendmail("alice@contoso.test", ["someone@example.org"], "Subject: out\r\n\r\nTo the Internet.\r\n")
c.quit()
PY
wait_state 127.0.3.1 connector SEA-Internet down
echo "-- LON-01 says SEA-Internet is $(state_at 127.0.3.1 connector SEA-Internet)"
sink
wait_state 127.0.3.1 connector SEA-Internet up
echo "-- the smart host is back: SEA-03's probe reports it up; LON-01 says $(state_at 127.0.3.1 connector SEA-Internet)"

echo; echo "# bridgehead failover: SEA-NYC has two remote bridgeheads, NYC-01 and NYC-02;"
echo "# kill -9 NYC-01 and Seattle's mail for London goes by NYC-02"
{ kill -9 "$pid_NYC_01"; wait "$pid_NYC_01"; } 2>/dev/null || true
wait_state 127.0.1.1 server NYC-01 down
wait_state 127.0.3.1 server NYC-01 down
echo "-- NYC-01 in SEA-01's table: $(state_at 127.0.1.1 server NYC-01), in LON-01's: $(state_at 127.0.3.1 server NYC-01)"
python3 - <<'PY'
import smtplib
c = smtplib.SMTP("127.0.1.1", 25)
for i in range(3):
    c.sendmail("alice@contoso.test", ["erin@contoso.test"], "Subject: failover %d\r\n\r\nBy NYC-02.\r\n" % i)
c.quit()
PY
for _ in $(seq 100); do
  [ "$(ls "$work"/LON-01/mailstore/erin@contoso.test/new | wc -l)" -ge 4 ] && break; sleep 0.1
done
sleep 1.2
echo "-- SEA-01 routed them (tracking.log):"
grep ROUTED "$work/SEA-01/tracking.log" | grep erin | tail -3 | cut -c12- | sed 's/ size=.*next_hop=/ ... next_hop=/'
start_node NYC-01; wait_ready "$work/NYC-01.ready"
wait_state 127.0.3.1 server NYC-01 up
echo "-- NYC-01 is back: LON-01 says $(state_at 127.0.3.1 server NYC-01); mail spreads over both again"

echo; echo "# kill -9 SEA-RGM1, Seattle's active master: SEA-RGM2 takes over, versions go on up"
{ kill -9 "$pid_SEA_RGM1"; wait "$pid_SEA_RGM1"; } 2>/dev/null || true
for _ in $(seq 100); do
  live 127.0.1.11:691 --json table 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["role"] != "master-active")' 2>/dev/null && break
  sleep 0.1
done
signer_at() { # signer_at ADDR GROUP: who signed GROUP's entry in ADDR's live table
  live "$1:691" --json table 2>/dev/null |
    python3 -c 'import json,sys; print(next(g["signed_by"] for g in json.load(sys.stdin)["groups"] if g["name"] == sys.argv[1]))' "$2" 2>/dev/null
}
for _ in $(seq 300); do [ "$(signer_at 127.0.3.2 Seattle)" = SEA-RGM2 ] && converged && break; sleep 0.1; done
echo "-- SEA-RGM2: $(live 127.0.1.11:691 --json table | python3 -c 'import json,sys; print(json.load(sys.stdin)["role"])'); its entry of Seattle reached London:"
digests
