#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain. Idempotent and quiet when
# everything is present:
#   - a Python venv with `deltalake` and `pyarrow`: the independent reader the silver tests
#     compare our tables against (scripts/read_lake.py).
set -euo pipefail
command -v cargo >/dev/null || { echo "cargo is required: https://rustup.rs" >&2; exit 1; }

VENV="${RECO_VENV:-$HOME/.cache/reco-venv}"
if ! "$VENV/bin/python" -c 'import deltalake, pyarrow' 2>/dev/null; then
    echo "test-deps: installing deltalake + pyarrow into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'deltalake>=1.0,<2' 'pyarrow>=15'
fi
