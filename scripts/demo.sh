#!/usr/bin/env bash
# The main job: install what is missing, build, and run the example
# organization (examples/orgs/contoso.ldif) under meshsim: every master
# candidate and server live on loopback, mail across the three groups and
# out, a bridgehead killed and the failover, the tables and the counts,
# and the report (report.json, topology.svg, convergence.svg) in DIR.
# usage: bash scripts/demo.sh [REPORT-DIR]   (default /tmp/mailmesh-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
report=${1:-/tmp/mailmesh-demo}
log=/tmp/mailmesh-setup.log
: >"$log"
missing=$(bash scripts/install-deps.sh --list)
if [ -n "$missing" ]; then
  echo "installing: $missing (the package manager's output: $log)"
  bash scripts/install-deps.sh >>"$log" 2>&1 || { tail -20 "$log"; exit 1; }
fi
echo "building (the compiler's output: $log)"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j"$(nproc)"; } \
  >>"$log" 2>&1 || { tail -30 "$log"; exit 1; }
exec ./build/sim/meshsim run examples/scenarios/demo.sim --report "$report"
