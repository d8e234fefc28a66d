# One place for the commands CI and people run, so they cannot drift apart.
# The target dir lives outside the clone so fresh clones (and CI) reuse the build.
CARGO_TARGET_DIR ?= $(HOME)/.cache/reco-target
export CARGO_TARGET_DIR
# The independent reader (Python deltalake + pyarrow) the silver tests compare against.
RECO_PYTHON ?= $(HOME)/.cache/reco-venv/bin/python
export RECO_PYTHON

.PHONY: help up dist test check fmt clippy bench reliability

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

up: ## Run the whole platform in one process (embedded broker, topics, API)
	cargo run --release -p reco -- up

DIST ?= dist
dist: ## The binary to ship: release build, debug information stripped, at $(DIST)/reco
	cargo build --release --locked -p reco --bin reco
	mkdir -p $(DIST)
	strip --strip-debug -o $(DIST)/reco $(CARGO_TARGET_DIR)/release/reco
	@ls -l $(DIST)/reco

test: ## Run every test (installs what the tests need first)
	./scripts/test-deps.sh
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --all-targets --no-fail-fast; \
	else \
		cargo test --workspace --all-targets --no-fail-fast; \
	fi
	cargo test --workspace --doc

BENCH_EVENTS ?= 1000000
BENCH_REPORT ?= $(CARGO_TARGET_DIR)/bench-report.md
bench: ## Benchmarks, release build: API (wrk), ingest vs the embedded broker's ceiling, silver vs bare rdkafka, gold core, latency and backlog catch-up, freshness + RSS per service, recommendation quality
	./scripts/test-deps.sh
	cargo build --release -p reco --bin reco
	@rm -f $(BENCH_REPORT)
	RECO_BENCH_REPORT=$(BENCH_REPORT) ./scripts/bench-api.sh 5
	RECO_BENCH_REPORT=$(BENCH_REPORT) ./scripts/bench-ingest.sh 8 300000
	RECO_BENCH_REPORT=$(BENCH_REPORT) cargo run --release -p reco-silver --example silver_bench -- $(BENCH_EVENTS) delta s3
	RECO_BENCH_REPORT=$(BENCH_REPORT) cargo run --release -p reco-gold --example window_bench -- 2000000
	RECO_BENCH_REPORT=$(BENCH_REPORT) cargo run --release -p reco-gold --example gold_latency -- 20 delta
	RECO_BENCH_REPORT=$(BENCH_REPORT) cargo run --release -p reco-gold --example gold_backlog -- 1000000 7 120
	RECO_BENCH_REPORT=$(BENCH_REPORT) RECO_BROKER_STORAGE=sqlite cargo run --release -p reco --example freshness -- 180 2000 600
	RECO_BENCH_REPORT=$(BENCH_REPORT) cargo run --release -p reco-gold --example neighbors_bench -- 2000000
	RECO_BENCH_REPORT=$(BENCH_REPORT) cargo run --release -p reco-api --example history_bench -- 1000000
	RECO_BENCH_REPORT=$(BENCH_REPORT) $(RECO_PYTHON) scripts/eval_recs.py $(CARGO_TARGET_DIR)/release/reco
	@echo; echo "== make bench: $$(nproc) cores, $$(awk '/MemTotal/ {printf "%.0f GiB", $$2/1048576}' /proc/meminfo) RAM, $$(date -u +%F) =="
	@echo "| part | measure | result | baseline (same run) | ratio |"; echo "|---|---|---:|---:|---:|"
	@cat $(BENCH_REPORT)

# A filter picks scenarios: `make reliability ONLY=kill_loop` (kill_loop, broker_outage, bad_input, soak, chaos).
ONLY ?=
RELIABILITY_REPORT ?= $(CARGO_TARGET_DIR)/reliability-report.txt
reliability: ## Reliability suite, full size (1M-event kill loop, 30 s broker outage, bad input, 30 min soak, chaos): one verdict each
	@rm -f $(RELIABILITY_REPORT)
	@RECO_RELIABILITY=full RECO_RELIABILITY_REPORT=$(RELIABILITY_REPORT) \
		cargo test --release -p reco --test reliability -- --nocapture --test-threads=1 $(ONLY); \
		status=$$?; echo; echo "== reliability verdicts =="; cat $(RELIABILITY_REPORT) 2>/dev/null; exit $$status

fmt: ## Check formatting
	cargo fmt --all --check

clippy: ## Lint, warnings are errors
	cargo clippy --workspace --all-targets -- -D warnings

check: fmt clippy test ## Everything CI checks, and lints
