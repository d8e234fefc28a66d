#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain. Idempotent and quiet when
# everything is present. Today: nothing beyond cargo (the Kafka broker is embedded).
set -euo pipefail
command -v cargo >/dev/null || { echo "cargo is required: https://rustup.rs" >&2; exit 1; }
