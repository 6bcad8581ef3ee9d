# Every target but `install` runs inside .venv, which `make install` creates.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install lock install-browser test test-all quick demo report evaluate acceptance bench bench-precision precision-check bench-budget bench-gpu bench-test bench-predict bench-ensembles bench-data bench-ref calibrate-stats lint format train sweep study real-faces clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-16s %s\n", $$1, $$2}'

# The lock: exact versions with hashes for the platform the records are made on (CPython 3.11, Linux x86-64; the
# CUDA wheel of torch, which runs on the CPU too). Elsewhere `make install` takes pyproject.toml's ranges.
LOCK := requirements.lock
LOCKED_PLATFORM := import sys, platform; sys.exit(sys.version_info[:2] != (3, 11) or platform.system() != "Linux" \
	or platform.machine() != "x86_64")

install: ## create .venv (when absent); install the locked versions (requirements.lock), then facseg editable
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	if $(BIN)/python -c '$(LOCKED_PLATFORM)'; then \
		$(BIN)/python -m pip install --require-hashes --no-deps -r $(LOCK) && \
		$(BIN)/python -m pip install --no-deps -e . ; \
	else \
		echo "not CPython 3.11 on Linux x86-64: pyproject.toml's ranges, not $(LOCK)'s versions"; \
		$(BIN)/python -m pip install -e '.[dev,sweepers,demo]' ; \
	fi

lock: ## refresh requirements.lock after pyproject.toml changed (keeps its pins; ARGS=--upgrade for the newest)
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra sweepers --extra demo --generate-hashes \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command "make lock" --quiet -o $(LOCK) $(ARGS)

install-browser: ## Chromium and its driver, for the demo page's browser test (Debian or Ubuntu, as root; CI runs it)
	apt-get update -qq && apt-get install -y -qq chromium chromium-driver

test: ## the fast lane: unit tests and quick integration tests, after every change (a few minutes on 2 CPU cores)
	$(BIN)/python -m pytest -m "not slow and not acceptance" $(ARGS)

test-all: ## every test but the acceptance run: the fast lane and the slow end-to-end tests (CI runs it)
	$(BIN)/python -m pytest $(ARGS)

report: ## report.md + figures of a sweep: ARGS=logs/multiruns/DIR (default: the newest sweep)
	$(BIN)/python -m facseg.report $(ARGS)

evaluate: ## score checkpoints on the test split: ARGS="ckpt_path=PATH" or ARGS="ckpt_paths=[A,B]" (an ensemble)
	$(BIN)/python -m facseg.evaluate $(ARGS)

acceptance: ## the README's default sweep at full size: every model must reach test/miou >= 0.5
	$(BIN)/python -m pytest -m acceptance -s $(ARGS)

bench-ref: ## this machine's speed (GFLOP/s of a matrix product, seconds of a U-Net training step): scale the docs' times
	$(BIN)/python benchmarks/bench_ref.py

bench: ## per-model costs on this machine: Lightning vs plain loop, inference variants, memory, channels_last steps
	$(BIN)/python benchmarks/bench_models.py $(ARGS)

bench-precision: ## float32 against bfloat16 side by side: training steps, inference, an epoch of the default run
	$(BIN)/python benchmarks/bench_precision.py $(ARGS)

PRECISION ?= logs/multiruns/precision-check
PRECISION_MODELS ?= unet,segnet,pspnet
PRECISION_SEEDS ?= 0,1,2,3,4
precision-check: ## bf16 against float32 accuracy: 5 seeds of each net in each precision, paired by seed (hours; run again, it goes on)
	$(BIN)/python -m facseg.run -m model=$(PRECISION_MODELS) seed=$(PRECISION_SEEDS) trainer.precision=32-true,bf16-mixed \
		skip_done=true hydra.sweep.dir=$(PRECISION) $(ARGS)
	$(BIN)/python -m facseg.report.precision $(PRECISION)

bench-budget: ## the main job whole, in each precision, in reference epochs of this machine (about an hour: alone)
	$(BIN)/python benchmarks/bench_budget.py $(ARGS)

bench-gpu: ## the same on a CUDA GPU in bf16 + channels_last (a few minutes)
	$(BIN)/python benchmarks/bench_gpu.py $(ARGS)

bench-test: ## one run's test, clean only vs every default condition: loading, forward and scoring per loader
	$(BIN)/python benchmarks/bench_test.py $(ARGS)

bench-predict: ## facseg predict on photos of 1 to 17 megapixels: photos/s and seconds per stage
	$(BIN)/python benchmarks/bench_predict.py $(ARGS)

bench-ensembles: ## seconds to score a study's ensembles in one test pass vs one pass each (untrained nets)
	$(BIN)/python benchmarks/bench_ensembles.py $(ARGS)

bench-data: ## what feeds the net: loader images/s (JPEGs vs the crop cache), training with each worker count
	$(BIN)/python benchmarks/bench_data.py $(ARGS)

calibrate-stats: ## simulated null studies through the report's own tests and intervals: false-positive rates, coverage
	$(BIN)/python -m facseg.report.calibration $(ARGS)

lint: ## ruff: lint, and fail on any file that `make format` would change
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: ## ruff format and import sorting
	$(BIN)/ruff check --fix --select I .
	$(BIN)/ruff format .

ifndef QUICK
QUICK := logs/quick/$(shell date +%Y-%m-%d_%H-%M-%S)
endif
quick: ## a first look in about a minute: U-Net trained 3 epochs on a small synthetic set, tested, reported (QUICK=DIR)
	$(BIN)/python -m facseg.run experiment=quick hydra.run.dir=$(QUICK) $(ARGS)
	$(BIN)/python -m facseg.report $(QUICK)

train: ## one run with the defaults; ARGS="model=segnet trainer.max_epochs=2" to override
	$(BIN)/python -m facseg.run $(ARGS)

sweep: ## the architecture comparison: U-Net, SegNet, PSPNet, one job each
	$(BIN)/python -m facseg.run -m model=unet,segnet,pspnet $(ARGS)

# Not the records' folders (logs/studies/architecture-comparison, celebamask-mini): a plain `make study` must not resume
# a record's study with other settings.
STUDY ?= logs/studies/default
study: ## the fair comparison: per-architecture tuning, 5 seeds, ensembles, report (STUDY=DIR; docs/study.md, Budget)
	$(BIN)/python -m facseg.study hydra.sweep.dir=$(STUDY) $(ARGS)

demo: ## the local demo page: ARGS="models=[A.ckpt,B.ckpt]" (http://127.0.0.1:7860)
	$(BIN)/python -m facseg.demo $(ARGS)

REAL_FACES ?= logs/multiruns/real-faces-sweep
SEEDS ?= 0,1,2
real-faces: ## a quick untuned sweep of the three nets on 800 real faces (../shared, or ARGS=data.root=PATH; SEEDS=0) and its report; the record is a study
	$(BIN)/python -m facseg.run -m experiment=celebamask_mini model=unet,segnet,pspnet seed=$(SEEDS) \
		hydra.sweep.dir=$(REAL_FACES) $(ARGS)
	$(BIN)/python -m facseg.report $(REAL_FACES)

clean: ## remove logs, caches and generated data (keeps .venv)
	rm -rf logs data .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
