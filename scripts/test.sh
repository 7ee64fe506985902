#!/usr/bin/env bash
# Run every test of the workspace (as root: tests mount overlays, start containers, publish ports).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
