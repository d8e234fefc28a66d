#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain. Idempotent and quiet when
# everything is present:
#   - a Python venv with `deltalake` and `pyarrow`: the independent reader the silver tests
#     compare our tables against (scripts/read_lake.py); `pyyaml`, the YAML parser the
#     deploy test reads the compose file with; and `moto[server]`, the S3-compatible server
#     the object-storage tests run as a separate process on loopback; and FastAPI, uvicorn,
#     confluent-kafka and prometheus_client: the seed's ingest stack, the API benchmark's
#     side-by-side baseline (scripts/fastapi_baseline.py);
#   - `implicit` (with numpy and scipy): the item-kNN recommenders the recommendation quality
#     test and benchmark compare against (scripts/eval_recs.py, which fetches MovieLens-100K
#     from the `recbole` wheel into ~/.cache/reco-eval);
#   - Prometheus and promtool (Debian package `prometheus`): the monitoring test runs the
#     shipped config, alerts and dashboards' queries against a real Prometheus;
#   - wrk (Debian package): the load generator of the API benchmark, whose script the test
#     suite runs once on a tiny size;
#   - stunnel4 and openssl (Debian packages): the TLS test puts the embedded broker behind a
#     TLS-terminating proxy, with a test CA made by the openssl command;
#   - chromium and chromium-driver (Debian packages): the console test drives a headless
#     Chromium through chromedriver (crates/reco/tests/it/console.rs).
set -euo pipefail
command -v cargo >/dev/null || { echo "cargo is required: https://rustup.rs" >&2; exit 1; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
apt_install() {
    # shellcheck disable=SC2086
    $SUDO apt-get install -y --no-install-recommends "$@" >/dev/null \
        || { $SUDO apt-get update -qq && $SUDO apt-get install -y --no-install-recommends "$@" >/dev/null; }
}

VENV="${RECO_VENV:-$HOME/.cache/reco-venv}"
if ! "$VENV/bin/python" -c 'import deltalake, pyarrow, yaml' 2>/dev/null; then
    echo "test-deps: installing deltalake + pyarrow + pyyaml into $VENV"
    # Debian's own python3 ships without the venv module (package python3-venv).
    python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'deltalake>=1.0,<2' 'pyarrow>=15' 'pyyaml>=6'
fi
if [ ! -x "$VENV/bin/uvicorn" ] || ! "$VENV/bin/python" -c 'import fastapi, confluent_kafka, prometheus_client, uvloop, httptools' 2>/dev/null; then
    echo "test-deps: installing the seed's FastAPI stack (the API benchmark's baseline) into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'fastapi>=0.115,<1' 'uvicorn[standard]>=0.30,<1' \
        'confluent-kafka>=2.5,<3' 'prometheus-client>=0.20,<1'
fi
if ! "$VENV/bin/python" -c 'import implicit' 2>/dev/null; then
    echo "test-deps: installing implicit (the reference item-kNN recommenders of the quality test) into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'implicit>=0.7,<0.8'
fi
if ! "$VENV/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
    echo "test-deps: installing openapi-spec-validator (checks the API's /openapi.json) into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'openapi-spec-validator>=0.7,<0.8'
fi
if [ ! -x "$VENV/bin/moto_server" ]; then
    echo "test-deps: installing moto[server] (the S3 server of the object-storage tests) into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6'
fi

MISSING=""
command -v prometheus >/dev/null && command -v promtool >/dev/null || MISSING="prometheus"
command -v wrk >/dev/null || MISSING="$MISSING wrk"
command -v curl >/dev/null || MISSING="$MISSING curl"
command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || MISSING="$MISSING stunnel4"
command -v openssl >/dev/null || MISSING="$MISSING openssl"
command -v chromium >/dev/null || MISSING="$MISSING chromium"
command -v chromedriver >/dev/null || MISSING="$MISSING chromium-driver"
if [ -n "$MISSING" ]; then
    echo "test-deps: installing the Debian packages:$MISSING"
    # On a host with systemd the package also enables its own service on :9090; the test
    # starts a separate Prometheus on a free port.
    # shellcheck disable=SC2086
    apt_install $MISSING
fi
