# Quickstart targets: each creates the virtual environment .venv on first use.
#   make demo   the demo table (classical filters on Lorenz63 and Lorenz96, about a minute)
#   make test   lint and the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= test,dapper,kolmogorov
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: demo test test-slow lint bench venv clean sysdeps

# System packages: an MPI from Debian for mpi4py (the `mpi` extra builds against it).
sysdeps:
	@command -v mpicc >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    libopenmpi-dev openmpi-bin >/dev/null; \
	  else echo "note: no MPI found; install libopenmpi-dev (MPI tests will be skipped)"; fi; }

venv: $(STAMP)

$(STAMP): setup.cfg setup.py constraints.txt | sysdeps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	if command -v mpicc >/dev/null 2>&1; then extras="$(EXTRAS),mpi"; else extras="$(EXTRAS)"; fi; \
	  $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$$extras]"
	touch $@

demo: $(STAMP)
	$(BIN)/dafilters demo

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -n 2 -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/vs_dapper.py --markdown

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
