# Gatewarden's two entry points (see README):
#   make run    build the console and start it on its embedded default
#   make test   run every test: Rust (SQLite + PostgreSQL) and browser (Playwright + chromium)
# Both install whatever is missing first (.ci/install-tools), idempotently.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
# wasm-opt from npm's binaryen, cargo-installed tools: found on PATH, never downloaded.
export PATH := $(CURDIR)/end2end/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
E2E_PORT ?= 3107

.PHONY: run test tools test-tools postgres lint rust-tests wasm-boundary site browser-tests api-schema-tests bench-browser

# cargo-leptos 0.3.10 builds the binary but then looks for it under the package's name
# (target/release/server) and fails, so it builds only the site and cargo the server.
run: tools
	cargo leptos build --release --frontend-only --split
	node .ci/compress-site.mjs target/site/pkg
	cargo build --release -p server --bin gatewarden
	$(TARGET_DIR)/release/gatewarden

test: test-tools postgres lint rust-tests wasm-boundary site browser-tests api-schema-tests
	@echo "all tests passed"

tools:
	.ci/install-tools build

test-tools:
	.ci/install-tools test

# The integration tests use the local PostgreSQL server; start it if it is down.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; echo "PostgreSQL did not start" >&2; exit 1

lint:
	python3 .ci/test_module_cycles.py
	$${SCHEMATHESIS_VENV:-$(HOME)/.cache/gatewarden/schemathesis}/bin/python .ci/test_deploy.py
	.ci/module-cycles.py server/src app/src
	cargo fmt --all --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked -p frontend --target wasm32-unknown-unknown -- -D warnings

rust-tests:
	cargo test --locked

# The browser bundle must never pull in server-side crates.
wasm-boundary:
	@bad=$$(cargo tree --locked -p frontend --target wasm32-unknown-unknown -e normal --prefix none | grep -E '^(sqlx|tokio|kube|mio) ' | sort -u || true); \
	 if [ -n "$$bad" ]; then echo "the wasm build depends on: $$bad" >&2; exit 1; fi; echo "wasm boundary ok (no sqlx, tokio, kube)"

# Release wasm (split: the gateway and audit pages load as their own chunks) + CSS into
# target/site; the e2e server is the debug binary cargo test built.
site:
	cargo leptos build --release --frontend-only --split --cargo-locked
	node .ci/compress-site.mjs target/site/pkg
	@for w in target/site/pkg/*.wasm; do echo "wasm $$(basename $$w): $$(stat -c %s $$w) bytes raw, $$(gzip -9c $$w | wc -c) bytes gzip"; done

browser-tests:
	cd end2end && GATEWARDEN_BIN=$(TARGET_DIR)/debug/gatewarden E2E_PORT=$(E2E_PORT) npx playwright test

# Every /api/v1 operation against its OpenAPI document, as each role (Schemathesis).
api-schema-tests:
	tests/schemathesis/run.sh $(TARGET_DIR)/debug/gatewarden $$(( $(E2E_PORT) + 83 ))

# Browser benchmarks (not part of `test`): the dependency map at 2,000 services.
bench-browser: test-tools site
	cargo build -p server --bin gatewarden
	cd end2end && GATEWARDEN_BIN=$(TARGET_DIR)/debug/gatewarden E2E_PORT=$(E2E_PORT) npx playwright test --config playwright.bench.config.ts
