# Two commands that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
USABLE := $(VENV)/bin/usable
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test repro bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# RINE on the redundant-XOR task (true redundancy 1 bit), stored in results/demo.zarr.
demo: setup
	$(USABLE) run rine --source pid:task=rdnxor --beta 50 --seed 0-2 \
	    --threads 1 --store results/demo.zarr
	$(USABLE) results ls results/demo.zarr

test: setup
	$(PY) -m pytest -q -p no:cacheprovider --timeout=900 --durations=15

# Long reproductions: the paper tables and every test marked slow.
repro: setup
	$(USABLE) run --config rine-table-a5 --store results/repro.zarr
	$(PY) -m pytest -q -m slow --timeout=3600

bench: setup
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf results .pytest_cache
