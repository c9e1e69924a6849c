# The two set-up commands (each creates .venv and installs everything on a fresh machine):
#   make demo   -- runs the main job: simulate (Geant4) -> train -> generate -> evaluate, on `mini`
#   make test   -- runs lint (ruff), type checks (mypy), the layer contracts (import-linter) and the
#                  test suite (installs Debian's chromium where missing: the evaluation pages are
#                  checked in a headless browser); `make test-slow` runs the long physics checks
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow lint install clean bench browser

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned in pyproject (2.13.0, CPU wheel); anything else pulls a multi-GB CUDA build.
	# constraints.txt pins every package (and so the numerics) to the versions the suite was checked with.
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/showerforge demo --output demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y --no-install-recommends chromium >/dev/null \
	  || { $$SUDO apt-get update >/dev/null && $$SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }; }

# Two processes (pytest-xdist), one module per process so that a module's shared fixture is built
# once; the long physics checks (marker `slow`) run in `make test-slow` (CI runs both).
PYTEST := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

test: lint browser
	$(PYTEST) -m "not slow" tests

test-slow: $(STAMP) browser
	$(PYTEST) -m slow tests

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_geant4.py
	$(BIN)/python benchmarks/bench_surrogate.py

clean:
	rm -rf $(VENV) demo build *.egg-info
