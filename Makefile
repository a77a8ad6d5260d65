# The front door: `make run`, `make check`, `make bench`, `make fuzz`. CMake does the building.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 600
# The smoke's whole budget, shared by the harnesses (CI runs it: keep it short).
FUZZ_SMOKE_SECONDS ?= 60
# FUZZ_PARALLEL=1: `make fuzz` runs the harnesses at the same time.
FUZZ_PARALLEL ?= 0
PYTHON     ?= /usr/bin/python3
# The project's own builds treat warnings as errors; a plain `cmake` configure does not.
WERROR     ?= ON
# The Ceph RBD backend is built when librados and librbd are installed (deps.sh check does).
CEPH       ?= $(shell { pkg-config --exists librados librbd 2>/dev/null || \
                { [ -e /usr/include/rados/librados.h ] && [ -e /usr/include/rbd/librbd.h ]; }; } \
                && echo ON || echo OFF)

.PHONY: all build build-asan run check unit api fuzz fuzz-smoke bench clean

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTOWAGE_WERROR=$(WERROR) -DSTOWAGE_WITH_CEPH=$(CEPH) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSTOWAGE_SANITIZE=ON -DSTOWAGE_WERROR=$(WERROR) -DSTOWAGE_WITH_CEPH=$(CEPH) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

run:
	./scripts/deps.sh run
	$(MAKE) --no-print-directory build
	./scripts/run.sh $(BUILD)/stowaged

# Unit tests (cmocka, through ctest) and API tests (pytest against a real daemon,
# real glusterd, real loop disks) run on the ASan/UBSan build.
check:
	./scripts/deps.sh check
	$(MAKE) --no-print-directory build build-asan
	$(MAKE) --no-print-directory unit api fuzz-smoke

unit:
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

api:
	STOWAGED=$(CURDIR)/$(ASAN_BUILD)/stowaged $(PYTHON) -m pytest -p no:cacheprovider -q -ra tests/api

fuzz-smoke:
	./fuzz/run.sh --share $(FUZZ_SMOKE_SECONDS)

fuzz:
	./scripts/deps.sh check
	./fuzz/run.sh $(if $(filter 1,$(FUZZ_PARALLEL)),--parallel) $(FUZZ_SECONDS)

bench:
	./scripts/deps.sh bench
	$(MAKE) --no-print-directory build
	./bench/run.sh $(BUILD)/stowaged

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
