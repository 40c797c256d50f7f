# Two commands for a fresh machine:  `make demo` (set up + the speech recipe end to end)  and
# `make test` (set up + the docs site + tests). `make docs` builds the site alone (docs/_build/html).
# TORCH pins the torch build: 2.13.0 is a CPU build on the dev machines' disk; on a GPU machine PyPI's
# torch==2.13.0 is its CUDA build. Override with e.g. `make test TORCH=torch==2.13.0`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo demo-long demo-synthetic demo-image test docs setup clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/python recipes/speech/run.py --config recipes/speech/cpu.yaml

# the demo's schedule stopped at 3000 steps instead of 1200 (about 30 min of pretraining on 2 cores), in its own folder
demo-long: setup
	$(BIN)/python recipes/speech/run.py --config recipes/speech/cpu.yaml train.stop_at=3000 \
		train.out_dir=runs/speech_cpu_long

# the site is part of the tests: a warning (a broken link or anchor, a page left out) fails the build, and CI
# runs `make test`. -E reads every page anew, so a warning of an unchanged page is not hidden by the cache;
# -n also reports references to things that do not exist
docs: setup
	$(BIN)/python -m sphinx -W --keep-going -n -E -q -b html docs docs/_build/html

test: setup docs
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs data docs/_build

demo-synthetic: setup
	$(BIN)/seqcpc pretrain --config recipes/synthetic/demo.yaml --overwrite

# the image recipe; its data comes from the Debian package dataset-fashion-mnist (apt-get install it as root)
demo-image: setup
	$(BIN)/python recipes/image/run.py --config recipes/image/cpu.yaml
