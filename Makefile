# supcon: the two commands of the README are `make reproduce` and `make test`.
# Both create the virtual environment and fetch Fashion-MNIST when they are missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
NAME   ?= default
# Extra notebook parameters for `make reproduce`, e.g. PARAMS="-p preset=full"
PARAMS ?=
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: reproduce test test-fast check bench sweep env data equations lint sync site clean

reproduce: env data
	$(PY) -m supcon_utils.runner --name $(NAME) $(PARAMS)

# Every test, and every notebook re-executed at its defaults with its outputs compared (nbval).
test: env data
	$(PY) -m pytest tests notebooks --nbval -p no:cacheprovider

# The developer's loop (~2 min): the tests that train nothing for long and execute no notebook.
test-fast: env data
	$(PY) -m pytest tests -m "not slow" -p no:cacheprovider

# Lint, format, and the notebook pairs (scripts/check_notebooks.py); CI runs it before the tests.
PY_SOURCES := supcon_utils tests scripts benchmarks notebooks site
check: env
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)
	$(PY) scripts/check_notebooks.py

# Training and loss speed on this machine (a few minutes): a table, and runs/bench/bench.json.
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

# constraints.txt pins the versions that made the committed outputs (scripts/pin_versions.py).
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,site]"
	touch $@

# Debian's package where apt is there and we are root; otherwise load_dataset falls back to Keras.
data: env
	@if [ ! -d $(FMNIST) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi
	$(PY) -c "from supcon_utils.data import load_dataset; load_dataset('fashion_mnist')"

equations: env
	$(PY) scripts/make_equations.py equations.png

# Fix what ruff can: imports, formatting.
lint: env
	$(VENV)/bin/ruff check --fix $(PY_SOURCES)
	$(VENV)/bin/ruff format $(PY_SOURCES)

# After editing notebooks/NN_name.py: copy its cells into the .ipynb, then re-execute in place so
# outputs match the code (TensorFlow's native log lines stripped). ONLY="03" re-executes only the
# notebooks named. Always .py -> .ipynb: `jupytext --sync` follows the newer file, so an .ipynb
# restored by git (newer than the edited .py) would overwrite the .py.
ONLY ?=
sync: env
	$(VENV)/bin/jupytext --update --to ipynb notebooks/[0-9][0-9]_*.py
	$(PY) -m supcon_utils.runner --in-place $(if $(ONLY),--only $(ONLY))

# The site: README, docs and the executed notebooks as committed (no re-execution), offline, with
# warnings as errors; open runs/site/html/index.html. tests/test_site.py builds and browses it.
site: env
	$(PY) -m sphinx -W --keep-going -q -c site -b html . runs/site/html
	@echo "site: runs/site/html/index.html"

clean:
	rm -rf runs .pytest_cache
