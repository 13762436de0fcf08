# supcon: the two commands of the README are `make reproduce` and `make test`.
# Both create the virtual environment and fetch Fashion-MNIST when they are missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
NAME   ?= default
# Extra notebook parameters for `make reproduce`, e.g. PARAMS="-p preset=full"
PARAMS ?=
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: reproduce test bench sweep env data equations lint sync clean

reproduce: env data
	$(PY) -m supcon_utils.runner --name $(NAME) $(PARAMS)

test: env data
	$(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider

# Training and loss speed on this machine (a few minutes): a table, and benchmarks/results.json.
bench: env data
	$(PY) benchmarks/bench.py

# A papermill sweep of one notebook over a grid; resumable; table in runs/<SWEEP>/sweep.csv, e.g.
# make sweep SWEEP=tsweep GRID="-g temperature=0.05,0.1,0.2,0.5 -g batch_size=128,256"
NOTEBOOK ?= 03_training
SWEEP    ?=
GRID     ?=
sweep: env data
	@test -n "$(SWEEP)" || { echo 'name the sweep: make sweep SWEEP=<name> GRID="-g key=v1,v2"'; exit 2; }
	$(PY) -m supcon_utils.sweep --notebook $(NOTEBOOK) --name $(SWEEP) $(GRID) $(PARAMS)

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# Debian's package where apt is there and we are root; otherwise load_dataset falls back to Keras.
data: env
	@if [ ! -d $(FMNIST) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi
	$(PY) -c "from supcon_utils.data import load_dataset; load_dataset('fashion_mnist')"

equations: env
	$(PY) scripts/make_equations.py equations.png

lint: env
	$(VENV)/bin/ruff check supcon_utils tests scripts benchmarks notebooks

# After editing notebooks/NN_name.py: pair, then re-execute in place so outputs match the code.
sync: env
	$(VENV)/bin/jupytext --sync notebooks/[0-9][0-9]_*.py
	cd notebooks && for nb in [0-9][0-9]_*.ipynb; do \
		../$(PY) -m papermill -k python3 $$nb $$nb || exit 1; done

clean:
	rm -rf runs .pytest_cache
