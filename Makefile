# The front door. `make demo` and `make test` work on a fresh Debian 12 machine:
# they install the Debian packages they need, configure, build and run.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
REL_BUILD  ?= build-release
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60

DEB_PACKAGES = build-essential pkg-config cmake ninja-build clang libclang-rt-14-dev \
  librocksdb-dev libsodium-dev libmsgpack-dev libcurl4-openssl-dev \
  libmicrohttpd-dev libjansson-dev libcriterion-dev nodejs

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test sanitize release demo bench bench-compare fuzz install clean mutate

all: build

# Installs only what is missing, so a prepared machine does not touch apt.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# Configured again when this file changes (a build/ made before CS_WERROR
# existed would otherwise keep building without it).
$(BUILD)/build.ninja: Makefile
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_WERROR=ON

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# A Release build (-O3, which warns where -O2 does not), warnings as errors:
# what a packager or an application's own CMake build compiles.
release: deps
	cmake -S . -B $(REL_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCS_WERROR=ON
	cmake --build $(REL_BUILD) -j $(JOBS)

# The whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Reports go to files: a report from a Criterion worker or a child process
# does not always change an exit code, so any report file fails the run.
sanitize: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_C_COMPILER=clang -DCS_WERROR=ON \
	  -DCMAKE_BUILD_TYPE=Debug -DCS_SANITIZE=ON -DCS_BUILD_BENCH=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	rm -rf $(ASAN_BUILD)/sanitizer-reports && mkdir -p $(ASAN_BUILD)/sanitizer-reports
	cd $(ASAN_BUILD) && \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$(CURDIR)/$(ASAN_BUILD)/sanitizer-reports/asan \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(CURDIR)/$(ASAN_BUILD)/sanitizer-reports/ubsan \
	  CS_TEST_SCALE=small ctest --output-on-failure -j $(JOBS)
	@if [ -n "$$(ls -A $(ASAN_BUILD)/sanitizer-reports)" ]; then \
	  echo "sanitizer reports:"; cat $(ASAN_BUILD)/sanitizer-reports/*; exit 1; \
	else echo "sanitize: no sanitizer reports"; fi

# Deliberate bugs in the rules that matter (tests/mutate/mutants.txt), one at
# a time on a scratch copy: each must make a test fail. MUTANTS="a b" runs some.
mutate: deps
	bash tests/mutate/run.sh $(MUTANTS)

demo: build
	@if [ -x $(BUILD)/cosmicsync ]; then $(BUILD)/cosmicsync demo; \
	else for e in $(BUILD)/examples/*; do [ -x "$$e" ] && "$$e" || exit 1; done; fi

bench: build
	@for b in $(BUILD)/bench/bench_*; do echo "== $$b"; "$$b" || exit 1; done

# Fuzz every decoder for FUZZ_SECONDS each (libFuzzer, clang).
fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_WERROR=ON \
	  -DCS_FUZZ=ON -DCS_BUILD_TESTS=OFF -DCS_BUILD_BENCH=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@for f in $(FUZZ_BUILD)/tests/fuzz/fuzz_*; do \
	  name=$$(basename $$f); mkdir -p $(FUZZ_BUILD)/corpus/$$name; \
	  echo "== $$name ($(FUZZ_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(FUZZ_BUILD)/corpus/$$name tests/fuzz/corpus/$$name || exit 1; \
	done

install: build
	cmake --install $(BUILD) --prefix $(or $(PREFIX),/usr/local)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(REL_BUILD)
include mk/bench-compare.mk
