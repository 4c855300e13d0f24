# fastai_audio: one command each for set-up, tests, the demo, docs, benchmarks and lint.
# Every target that needs the environment depends on `install`, so each works alone on a fresh clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/lock.txt
TINYSF := tinysoundfont==0.3.7

.PHONY: install test demo docs bench bench-long lint clean

install: $(STAMP)

# Reinstalls only when the lock file or the package metadata changed, so a second run is a no-op.
$(STAMP): $(LOCK) setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps $(TINYSF)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/python examples/demo.py --out demo_out

docs: install
	$(BIN)/mkdocs build --strict

# A few minutes: loader, front-end, inference, and what each augmentation costs per batch.
bench: install
	$(BIN)/python bench/loader.py
	$(BIN)/python bench/frontend.py
	$(BIN)/python bench/inference.py
	$(BIN)/python bench/augment_study.py --skip-study

# Training runs (tens of minutes on a 2-core CPU): on the fly vs PNG, and the augmentation study.
bench-long: install
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/augment_study.py --skip-cost

lint: install
	$(BIN)/ruff check fastai_audio tests bench examples
	$(BIN)/ruff format --check fastai_audio tests bench examples

clean:
	rm -rf $(VENV) .cache demo_out site .pytest_cache
