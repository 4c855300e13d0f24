# fastai_audio: one command each for set-up, tests, the demo, docs, benchmarks and lint.
# Every target that needs the environment depends on `install`, so each works alone on a fresh clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/lock.txt
TINYSF := tinysoundfont==0.3.7
# MusiCNN's weights (MagnaTagATune, Million Song Dataset): read with numpy, so TensorFlow, which it declares, is not
# installed; without it the MusiCNN tests skip, saying so.
MUSICNN := musicnn==0.1.0

LATEST := .venv-latest
# This machine's pip configuration caps torch (a constraint file); the newest-release check lifts it for its own
# install only. Override with LATEST_PIP_ENV= to keep your machine's constraints.
LATEST_PIP_ENV ?= PIP_CONSTRAINT=/dev/null
# Extra requirements for that environment, e.g. LATEST_PINS="fastai==2.8.0" to test the bottom of a range.
LATEST_PINS ?=

.PHONY: install test test-latest demo docs bench bench-long gpu-check lint clean

install: $(STAMP)

# Reinstalls only when the lock file or the package metadata changed, so a second run is a no-op.
$(STAMP): $(LOCK) setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps $(TINYSF) $(MUSICNN)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

# The suite against the newest releases that setup.cfg's ranges allow (fastai, fastcore, fasttransform, plum-dispatch,
# torch, torchaudio, torchvision...), in a second environment made afresh; prints the versions it tested.
# tests/test_compat.py names the seam entry (fastai_audio/_compat.py) that a release broke.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/pip install --quiet --upgrade pip
	$(LATEST_PIP_ENV) $(LATEST)/bin/pip install --quiet --upgrade --upgrade-strategy eager -e ".[dev,notebook]" pretty_midi $(LATEST_PINS)
	$(LATEST)/bin/pip install --quiet --no-deps tinysoundfont $(MUSICNN)
	@$(LATEST)/bin/python -c "import importlib.metadata as m; print('test-latest versions:', ', '.join(f'{p} {m.version(p)}' for p in ('fastai', 'fastcore', 'fasttransform', 'plum-dispatch', 'torch', 'torchaudio', 'torchvision', 'numpy', 'pandas', 'soundfile')))"
	$(LATEST)/bin/python -m pytest -q -p no:cacheprovider

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
	$(BIN)/python bench/seam.py

# On a machine with a CUDA GPU: the CUDA tests and the benchmarks on the GPU, their tables in gpu_check.md.
gpu-check: install
	PYTHON=$(BIN)/python bench/gpu_check.sh

# Training runs (tens of minutes on a 2-core CPU): on the fly vs PNG, the augmentation study, scaling out (shards
# against files, memory against data size, 1 against 2 processes), and serving (latency, load, memory).
bench-long: install
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/augment_study.py --skip-cost
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/serve.py

lint: install
	$(BIN)/ruff check fastai_audio tests bench examples
	$(BIN)/ruff format --check fastai_audio tests bench examples

clean:
	rm -rf $(VENV) $(LATEST) .cache demo_out site .pytest_cache
