# `make bench-compare`: cosmicsync beside Yjs, Automerge, Loro and json-joy on the same
# generated workloads, interleaved repetitions, one table (docs/benchmarks.md, .png).
# Included from the top-level Makefile, which provides BUILD, SUDO and the build target.
# ARGS is passed to the harness: make bench-compare ARGS="--reps 5 --json".

BENCH_COMPARE_DEB = gnuplot-nox time
BENCH_PEERS = bench/peers

.PHONY: bench-compare bench-compare-deps

bench-compare-deps:
	@missing=""; for p in $(BENCH_COMPARE_DEB); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "bench-compare needs Node.js 20 and npm"; exit 1; }
	@if [ ! -d $(BENCH_PEERS)/node_modules ] || [ $(BENCH_PEERS)/package-lock.json -nt $(BENCH_PEERS)/node_modules ]; then \
	  echo "npm ci in $(BENCH_PEERS)"; \
	  cd $(BENCH_PEERS) && npm ci --no-audit --no-fund --loglevel=error; \
	fi

bench-compare: build bench-compare-deps
	node bench/compare/harness.mjs --build $(BUILD) $(ARGS)
