#!/usr/bin/env bash
# Split horizon for ten minutes, with real processes and default settings
# and no master: tests/integration/routing_horizon.py with the no-path
# message watched for 600 s instead of 20 -- it must be handed to and fro
# ever more slowly and never bounced (no 5.4.6 between organization
# servers). Usage: bench/horizon_soak.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
b=${1:-build}
python3 tests/integration/routing_horizon.py "$b/node/meshnode" "$b/cli/meshctl" \
  tests/support/mkorg.py conf/mailmesh.schema --watch 600
