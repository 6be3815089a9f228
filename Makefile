# Quickstart targets: each creates the virtual environment .venv on first use, says what it installs.
#   make demo   the core dependencies only (no root, no system packages; about 2 minutes on a fresh
#               machine, install included), then the demo table: classical filters on Lorenz63/96
#   make test   every extra (as root also their system packages, see sysdeps), lint and the test
#               suite: what CI runs (.ci/run, where a test skipped for a missing extra is an error)
#   make venv EXTRAS=all   the heavy extras on demand: atmos (Dedalus, needs the system packages),
#               kolmogorov (jax, jax-cfd), mpi (mpi4py, needs an MPI), dapper, test, docs; or a list
#   make docs   the documentation site in build/site/ (mkdocs build --strict, the docs extra): what CI
#               builds after `make test`
SHELL  := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The extras `make test` installs; without root, atmos and mpi only where their system packages are.
EXTRAS ?= test,dapper,kolmogorov,atmos,mpi,docs
# More pip options for every install (e.g. another index, --find-links DIR).
PIP_ARGS ?=
DEPS   := setup.cfg setup.py constraints.txt
comma  := ,
empty  :=
space  := $(empty) $(empty)
stamp   = $(VENV)/.installed-$(or $(subst $(space),-,$(strip $(1))),core)
LOG    := @echo "[dafilters]"

.PHONY: demo test test-slow lint bench venv clean sysdeps docs

# System packages: an MPI from Debian for mpi4py (the `mpi` extra builds against it), and FFTW with
# its MPI part and a C compiler for Dedalus (the `atmos` extra builds from source against both).
SYSPKGS   := libopenmpi-dev openmpi-bin libfftw3-dev libfftw3-mpi-dev gcc
HAVE_MPI  := $(shell command -v mpicc >/dev/null 2>&1 && echo yes)
HAVE_SYS  := $(and $(HAVE_MPI),$(wildcard /usr/include/fftw3-mpi.h),$(shell command -v gcc))
IS_ROOT   := $(filter 0,$(shell id -u))
sysdeps:
	@if [ -z "$(HAVE_SYS)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "[dafilters] installing the system packages $(SYSPKGS) (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(SYSPKGS) >/dev/null; \
	  else echo "[dafilters] the atmos and mpi extras build against system packages missing here:" \
	    "install them as root (sudo apt-get install $(SYSPKGS), or sudo make sysdeps);" \
	    "make demo needs none of them" >&2; exit 1; fi; fi

# What `make test` installs: without root and without the system packages, the extras that need
# them are left out (their tests are skipped, naming the extra; .ci/run makes that an error).
TEST_EXTRAS := $(subst $(comma),$(space),$(EXTRAS))
ifeq ($(IS_ROOT)$(HAVE_SYS),)
TEST_EXTRAS := $(filter-out atmos $(if $(HAVE_MPI),,mpi),$(TEST_EXTRAS))
endif
LEFT_OUT := $(filter-out $(TEST_EXTRAS),$(subst $(comma),$(space),$(EXTRAS)))
TEST_STAMP := $(call stamp,$(TEST_EXTRAS))
CORE_STAMP := $(call stamp,core)

venv: $(call stamp,$(subst $(comma),$(space),$(EXTRAS)))

# pip's output, a line per package: name, version, download size (errors go to stderr, unfiltered).
PIP_LINES := 'function show(path, note,  n, f, a) { n = split(path, f, "/"); split(f[n], a, "-"); \
  sub(/(\.tar\.gz|\.zip|\.whl)$$/, "", a[2]); print "    " a[1] " " a[2] note; fflush() } \
  /^Processing \//           { show($$2, "") } \
  /^ +Downloading /           { show($$2, " " $$3 " " $$4) } \
  /^ +Using cached /          { show($$3, " (cached)") } \
  /Building (wheel|editable) for .*started/ { print "    building " $$4 " ..."; fflush() } \
  /^Installing collected packages/ { print "    installing " split(substr($$0, 32), f, ", ") \
    " packages (unpacking torch takes a while) ..."; fflush() }'

# .venv/.installed-<extras joined by ->: create the venv if needed and install dafilters with those
# extras (core: none), a line per step; Dedalus's setup.py finds MPI and FFTW through the variables.
$(VENV)/.installed-%: $(DEPS)
	@case ",$(subst -,$(comma),$*)," in *,atmos,*|*,all,*) have="$(HAVE_SYS)";; \
	  *,mpi,*) have="$(HAVE_MPI)";; *) have=n/a;; esac; [ -n "$$have" ] || $(MAKE) --no-print-directory sysdeps
	@set -eo pipefail; start=$$SECONDS; extras="$(subst -,$(comma),$(filter-out core,$*))"; \
	if [ ! -x $(BIN)/python ]; then \
	  if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	    echo "[dafilters] dafilters needs Python 3.11+; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." \
	      "Run with PYTHON=/path/to/python3.11" >&2; exit 1; fi; \
	  echo "[dafilters] 1/3 creating $(VENV) with $$($(PYTHON) -c 'import sys; print(sys.executable, sys.version.split()[0])')"; \
	  $(PYTHON) -m venv $(VENV) || { echo "[dafilters] '$(PYTHON) -m venv' failed: on Debian/Ubuntu" \
	    "it needs the python3-venv package, or use another Python: PYTHON=/path/to/python3.11" >&2; exit 1; }; \
	else echo "[dafilters] 1/3 using $(VENV)"; fi; \
	echo "[dafilters] 2/3 upgrading pip"; \
	$(BIN)/python -m pip install --quiet --upgrade pip $(PIP_ARGS); \
	if [ -z "$$extras" ]; then echo "[dafilters] 3/3 installing dafilters and its core dependencies" \
	  "(numpy, scipy, pandas, torch, optuna, matplotlib; about a minute, torch is the largest):"; \
	else echo "[dafilters] 3/3 installing dafilters with the extras $$extras$$(case ",$$extras," in \
	  *,atmos,*|*,all,*) echo ' (Dedalus builds from source: a few minutes)';; esac):"; fi; \
	arch="$$(gcc -print-multiarch 2>/dev/null || true)"; \
	export MPI_INCLUDE_PATH="$${MPI_INCLUDE_PATH:-$$(mpicc --showme:incdirs 2>/dev/null | cut -d' ' -f1)}" \
	  MPI_LIBRARY_PATH="$${MPI_LIBRARY_PATH:-$$(mpicc --showme:libdirs 2>/dev/null | cut -d' ' -f1)}" \
	  FFTW_INCLUDE_PATH="$${FFTW_INCLUDE_PATH:-/usr/include}" \
	  FFTW_LIBRARY_PATH="$${FFTW_LIBRARY_PATH:-/usr/lib/$$arch}"; \
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --progress-bar off --no-compile -c constraints.txt $(PIP_ARGS) \
	  -e ".$${extras:+[$$extras]}" | awk $(PIP_LINES); \
	touch $@ $(CORE_STAMP); \
	echo "[dafilters] installed in $$((SECONDS - start)) s"

demo: $(CORE_STAMP)
	$(LOG) "running the demo: classical filters on Lorenz63 and Lorenz96 (about a minute)"
	@$(BIN)/dafilters demo

lint: $(TEST_STAMP)
	@$(if $(LEFT_OUT),echo "[dafilters] note: without the system packages $(SYSPKGS)$(comma)" \
	  "make test leaves out the extras $(LEFT_OUT): their tests are skipped (as root: make sysdeps)",true)
	$(LOG) "lint (ruff)"
	@$(BIN)/ruff check .

test: lint
	$(LOG) "the test suite (pytest -n 2)"
	@$(BIN)/python -m pytest -n 2 -q

test-slow: $(TEST_STAMP)
	$(BIN)/python -m pytest -n 2 -q -m slow

# The docs need the docs extra: the venv `make test` installed has it, else it is installed alone.
DOCS_STAMP := $(if $(and $(wildcard $(TEST_STAMP)),$(filter docs,$(TEST_EXTRAS))),$(TEST_STAMP),$(call stamp,docs))
docs: $(DOCS_STAMP)
	$(LOG) "the documentation site (mkdocs build --strict, into build/site/)"
	@$(BIN)/mkdocs build --strict

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/vs_dapper.py --markdown

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
