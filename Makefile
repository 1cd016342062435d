# Thin front of the CMake build. `make demo` and `make test` install what is
# missing (scripts/deps.sh), configure, build and run.
BUILD ?= build
JOBS ?= 2

.PHONY: all deps build demo test bench conformance compare-precision clean

all: build

deps:
	@bash scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

bench: build
	@bash bench/run.sh $(BUILD)

conformance: build
	@bash scripts/conformance-table.sh $(BUILD)

compare-precision: build
	@bash scripts/compare-precision.sh $(BUILD)

clean:
	rm -rf $(BUILD)
