#!/usr/bin/env bash
# Relay throughput, side by side in one run (issue: meshnode faster than
# Postfix at equal durability):
#   smtp-source -> meshnode -> smtp-sink   against
#   smtp-source -> Postfix  -> smtp-sink
# Both acknowledge only after fsync (Postfix always fsyncs its queue file;
# meshnode answers 250 after fdatasync of its spool). Messages/s are counted
# end to end: from the first connection until the sink has them all.
# Then the RSS of an idle meshnode, and with 1,000 idle sessions open.
#
#   bash bench/smtp_bench.sh [BUILD_DIR] [MESSAGES] [SESSIONS] [SIZE]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
msgs=${2:-10000}
sessions=${3:-20}
size=${4:-5120}
work=$(mktemp -d /tmp/mm-bench.XXXXXX)
chmod 755 "$work" # postfix runs as its own user
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	postfix -c "$work/pfx/etc" stop >/dev/null 2>&1 || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

sink_count() { tr '\r' '\n' <"$1" | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2; }

# run NAME ADDR SINKLOG: prints messages/s end to end
run() {
	local addr=$2 log=$3
	local t0 t1
	t0=$(date +%s.%N)
	smtp-source -s "$sessions" -m "$msgs" -l "$size" -f bench@example.org \
		-t sink@example.net "$addr" >/dev/null
	for _ in $(seq 1 3000); do
		[ "$(sink_count "$log")" = "$msgs" ] && break
		sleep 0.1
	done
	t1=$(date +%s.%N)
	local got
	got=$(sink_count "$log")
	if [ "$got" != "$msgs" ]; then
		echo "$1: the sink has $got of $msgs messages" >&2
		exit 1
	fi
	python3 -c "print('%.0f' % ($msgs / ($t1 - $t0)))"
}

# meshnode
python3 "$here/tests/support/mkorg.py" "$work/lab.ldif" --bind 127.0.9.1:2525 \
	--smarthost 127.0.9.3:25250 --relay 127.0.0.0/8
smtp-sink -u nobody -c 127.0.9.3:25250 1024 >"$work/sink-mm.log" 2>&1 &
pids+=($!)
"$build/node/meshnode" --directory "ldif:$work/lab.ldif" --server N1 --spool "$work/spool" \
	>"$work/node.out" 2>"$work/node.err" &
node=$!
pids+=($node)
for _ in $(seq 1 100); do grep -q ready "$work/node.out" && break; sleep 0.05; done
rss_idle=$(awk '/VmRSS/ {print $2}' /proc/$node/status)
mm=$(run meshnode 127.0.9.1:2525 "$work/sink-mm.log")

# 1,000 idle sessions
python3 - "$node" <<'PY' >"$work/rss1000"
import socket, sys, time
conns = []
for i in range(1000):
    s = socket.create_connection(("127.0.9.1", 2525))
    conns.append(s)
for s in conns:
    s.recv(512)
time.sleep(0.2)
print(open("/proc/%s/status" % sys.argv[1]).read().split("VmRSS:")[1].split()[0])
PY
rss_1000=$(cat "$work/rss1000")

# Postfix, a private instance (recipe: ../shared/research/smtp-anchors.md, appendix A)
P=$work/pfx
mkdir -p "$P/etc" "$P/spool" "$P/data"
chown postfix:postfix "$P/data"
cat >"$P/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $P/spool
data_directory = $P/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = pfx.bench.invalid
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.9.4]:25250
maillog_file = $P/maillog
maillog_file_prefixes = /var, /dev/stdout, /tmp
multi_instance_enable = yes
CF
sed -e 's/^smtp \+inet .*/127.0.9.2:2525 inet n - n - - smtpd/' \
	-e 's/^\([a-z]\+ \+\(unix\|fifo\|unix-dgram\|pass\) \+[-yn] \+[-yn] \+\)[-yn]/\1n/' \
	/etc/postfix/master.cf >"$P/etc/master.cf"
grep -q '^postlog' "$P/etc/master.cf" ||
	echo 'postlog   unix-dgram n  -       n       -       1       postlogd' >>"$P/etc/master.cf"
smtp-sink -u nobody -c 127.0.9.4:25250 1024 >"$work/sink-pf.log" 2>&1 &
pids+=($!)
# postfix logs its startup errors to syslog only; "script" gives it a terminal
script -qc "postfix -c $P/etc check" /dev/null || true
postfix -c "$P/etc" start >/dev/null 2>&1
for _ in $(seq 1 100); do
	(exec 3<>/dev/tcp/127.0.9.2/2525) 2>/dev/null && break
	sleep 0.1
done
pf=$(run postfix 127.0.9.2:2525 "$work/sink-pf.log")

echo "relay, $msgs messages of $size bytes, $sessions sessions, fsync on, all on this machine"
printf '%-10s %10s\n' "" "msg/s"
printf '%-10s %10s\n' meshnode "$mm"
printf '%-10s %10s\n' postfix "$pf"
python3 -c "print('ratio meshnode/postfix: %.2fx' % ($mm / $pf))"
echo "meshnode RSS idle: $((rss_idle / 1024)) MB; with 1000 idle sessions: $((rss_1000 / 1024)) MB"
