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
echo; echo "# live: 8 meshnode processes, mail alice@SEA-01 -> erin@LON-01 and -> the Internet"
work=$(mktemp -d /tmp/mailmesh-demo.XXXXXX)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'stop; rm -rf "$work"' EXIT
chmod 755 "$work"
smtp-sink -u nobody -c 127.0.0.1:2526 64 >"$work/sink.log" 2>&1 & pids+=($!)
for s in SEA-01 SEA-02 SEA-03 NYC-01 NYC-02 NYC-03 LON-01 LON-02; do
  ./build/node/meshnode --directory "ldif:$org" --server "$s" --spool "$work/$s" \
    --log "$work/$s.log" >"$work/$s.ready" & pids+=($!)
done
for s in SEA-01 SEA-02 SEA-03 NYC-01 NYC-02 NYC-03 LON-01 LON-02; do
  for _ in $(seq 100); do grep -q ready "$work/$s.ready" 2>/dev/null && break; sleep 0.05; done
done
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
for s in SEA-01 SEA-02 SEA-03 NYC-01 NYC-02 NYC-03 LON-01 LON-02; do
  [ -s "$work/$s/tracking.log" ] && { echo "-- $s tracking.log"; cut -c12- "$work/$s/tracking.log"; }
done
echo "-- erin's mailbox on LON-01:"
cat "$work"/LON-01/mailstore/erin@contoso.test/new/*
echo "-- SEA-01 queues:"
./build/cli/meshctl --spool "$work/SEA-01" queues
