#!/usr/bin/env bash
# A chaos soak with real processes: Contoso live under meshsim for
# MINUTES minutes of chaos (RATE faults a minute, drawn from SEED), mail
# sent from every group every ten seconds, then chaos off and every
# message must arrive: nothing lost. Prints meshsim's summary and where
# the report is.
# usage: bash bench/meshsim_soak.sh [BUILD] [MINUTES] [RATE] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} minutes=${2:-10} rate=${3:-20} seed=${4:-1}
work=$(mktemp -d /tmp/meshsim-soak.XXXXXX)
sc=$work/soak.sim
{
  echo "org $PWD/examples/orgs/contoso.ldif"
  echo "start all"
  echo "wait converged within 60s"
  echo "chaos on $rate/m"
  servers=(SEA-01 SEA-02 SEA-03 NYC-01 NYC-02 NYC-03 LON-01 LON-02)
  rcpts=(alice bob carol dave erin frank)
  for ((t = 5, i = 0; t < minutes * 60; t += 10, i++)); do
    echo "at ${t}s send 10 from ${servers[i % 8]} to ${rcpts[i % 6]}@contoso.test"
  done
  echo "wait $((minutes * 60 + 5))s"
  echo "chaos off"
  echo "expect digests equal within 120s"
  echo "expect all delivered within 300s"
  echo "expect lost 0"
} >"$sc"
"$build/sim/meshsim" run "$sc" --seed "$seed" --report "$work/report" | grep -v '^chaos: ' | tail -30
echo "scenario and report: $work"
