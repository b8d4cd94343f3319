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
