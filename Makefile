# Quickstart targets: each creates the virtual environment .venv on first use.
#   make demo   the demo table (classical filters on Lorenz63 and Lorenz96, about a minute)
#   make test   lint and the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= test,dapper,kolmogorov,atmos
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: demo test test-slow lint bench venv clean sysdeps

# System packages: an MPI from Debian for mpi4py (the `mpi` extra builds against it), and FFTW with
# its MPI part and a C compiler for Dedalus (the `atmos` extra builds from source against both).
SYSPKGS := libopenmpi-dev openmpi-bin libfftw3-dev libfftw3-mpi-dev gcc
sysdeps:
	@if ! command -v mpicc >/dev/null 2>&1 || [ ! -e /usr/include/fftw3-mpi.h ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    $(SYSPKGS) >/dev/null; \
	  else echo "note: install $(SYSPKGS) (MPI tests are skipped and the atmos extra cannot build without them)"; fi; fi

venv: $(STAMP)

$(STAMP): setup.cfg setup.py constraints.txt | sysdeps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# Dedalus's setup.py finds MPI and FFTW through these variables (Debian's OpenMPI and FFTW).
	if command -v mpicc >/dev/null 2>&1; then extras="$(EXTRAS),mpi"; else extras="$(EXTRAS)"; fi; \
	  arch="$$(gcc -print-multiarch 2>/dev/null)"; \
	  export MPI_INCLUDE_PATH="$${MPI_INCLUDE_PATH:-$$(mpicc --showme:incdirs 2>/dev/null | cut -d' ' -f1)}" \
	    MPI_LIBRARY_PATH="$${MPI_LIBRARY_PATH:-$$(mpicc --showme:libdirs 2>/dev/null | cut -d' ' -f1)}" \
	    FFTW_INCLUDE_PATH="$${FFTW_INCLUDE_PATH:-/usr/include}" \
	    FFTW_LIBRARY_PATH="$${FFTW_LIBRARY_PATH:-/usr/lib/$$arch}"; \
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
