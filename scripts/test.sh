#!/usr/bin/env bash
# The project's test command (README "Set-up", step 2).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace 2>&1
