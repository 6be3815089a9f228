# Quickstart targets: each creates the virtual environment .venv on first use.
#   make demo   the demo table (classical filters on Lorenz63 and Lorenz96, about a minute)
#   make test   lint and the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= test,dapper
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: demo test test-slow lint bench venv clean

venv: $(STAMP)

$(STAMP): setup.cfg setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

demo: $(STAMP)
	$(BIN)/dafilters demo

lint: $(STAMP)
	$(BIN)/ruff check dafilters mods tests benchmarks

test: lint
	$(BIN)/python -m pytest -n 2 -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/vs_dapper.py --markdown

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
