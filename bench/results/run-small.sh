#!/usr/bin/env bash
# Runs every small workload against a fresh local shoal node (scripts/bench-local), one folder each.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
for w in "$here"/bench/workloads/small-*.toml; do
  name="$(basename "$w" .toml)"
  "$here/scripts/bench-local" "$w" "$here/bench/results/$name"
done
