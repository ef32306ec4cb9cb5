# The verbs users type. `make setup test` is what CI runs (.ci/run), on both stacks.
# STACK=legacy (default: Python 3.8, torch 1.11, mmcv-full; the image's) or STACK=modern (Python 3.11, torch 2),
# each in its own venv.
STACK ?= legacy
VENV ?= $(if $(filter modern,$(STACK)),.venv-modern,.venv)
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
HMKD := $(PY) -m hmkd
SMOKE_ROOT ?= runs

.PHONY: help setup test smoke bench bench-distill clean

help:
	@echo "make setup        create $(VENV) with the $(STACK) stack (STACK=legacy: Python 3.8, the image's pins;"
	@echo "                  STACK=modern: Python 3.11, torch 2)"
	@echo "make test         run the test suite (CPU, tiny models) in $(VENV)"
	@echo "make bench        CPU benchmarks, <15 min (JSON in $(BENCH_OUT)/, then a table of figures vs targets)"
	@echo "make bench-predict hmkd predict's images/s (torch, onnxruntime, TorchScript) against the forward alone, CPU"
	@echo "make bench-distill the distillation quality benchmark, <45 min (docs/benchmark-distill.md)"
	@echo "make bench-gpu    set up a venv on a bare GPU machine and run the GPU benchmarks"
	@echo "make gpu-check    the prepared GPU check (CUDA tests + GPU benchmarks, <8 min; GPU_CHECK_FLAGS=--dry-run: CPU)"
	@echo "make smoke        the main job: jobs/smoke.yaml (teacher, student, HMKD student, report) on this machine"

$(VENV)/.installed: requirements/stack.txt requirements/modern.txt requirements/modern-mmcv.txt requirements/test.txt \
		requirements/legacy-test.txt pyproject.toml \
		tools/setup_env.sh tools/find_python.sh docker/image_pins.py docker/stacks/modern.args
	STACK=$(STACK) tools/setup_env.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# jobs/smoke.yaml through the launcher on this machine. Stages with a DONE marker are skipped: `make smoke` again
# only prints the report (rm -r $(SMOKE_ROOT)/smoke to rerun).
smoke: $(VENV)/.installed
	$(HMKD) submit jobs/smoke.yaml --local --set root=$(SMOKE_ROOT)

# Benchmarks, not tests: JSON under $(BENCH_OUT)/, a printed line per figure, then the table of every figure against
# its target (python -m hmkd.benchmarks.table). `make bench` is the CPU side's speed figures in under 15 minutes on
# 2 cores; `make bench-distill` is the quality benchmark (docs/benchmark-distill.md: 7 methods x 5 paired seeds
# and the unlabelled-image runs, about 40 minutes here). Finished stages are reused: rm -r the root to train again.
# `make bench-gpu` sets up its own venv on a bare GPU machine (build/venv-gpu: torch +cu113, no mmcv) with the host's
# python3 (tools/bench_gpu.py, standard library only), then runs the GPU figures in it (python -m hmkd.benchmarks.gpu).
BENCH_OUT ?= results
BENCH_ROOT ?= runs/bench
BENCH_GPU_PY ?= python3
BENCH_GPU_FLAGS ?=
BENCH := $(PY) -m hmkd.benchmarks

.PHONY: bench-gpu bench-data bench-eval bench-export bench-formats bench-predict bench-stacks bench-table

bench-distill: $(VENV)/.installed
	$(BENCH).distill_quality --out $(BENCH_OUT) --root $(BENCH_ROOT)

bench-data: $(VENV)/.installed
	$(BENCH).data_pipeline --out $(BENCH_OUT)

bench-eval: $(VENV)/.installed
	$(BENCH).eval_throughput --out $(BENCH_OUT)

bench-formats: $(VENV)/.installed
	$(BENCH).step_formats --out $(BENCH_OUT)

# The exported student (hmkd export): onnxruntime and TorchScript latency against torch eager, CPU, batch 1.
bench-export: $(VENV)/.installed
	$(BENCH).export_latency --out $(BENCH_OUT)

# hmkd predict end to end (decode, normalise, infer, colour, write) against the forward alone: torch eager, onnxruntime
# and TorchScript, DeepLabV3-R18 at 512x1024 on the CPU, same threads, timed in rotation (a few minutes on 2 cores).
bench-predict: $(VENV)/.installed
	$(BENCH).predict_throughput --out $(BENCH_OUT)

bench-table:
	$(BENCH).table $(BENCH_OUT)

# The modern / legacy step time: each stack's venv times the same step in its own worker (skipped with a line when
# one of the two venvs is missing: make setup, make setup STACK=modern).
bench-stacks: $(VENV)/.installed
	$(BENCH).stack_ratio --out $(BENCH_OUT) --legacy-python .venv/bin/python --modern-python .venv-modern/bin/python

# One recipe, not prerequisites, so that `make -j` cannot run two timed benchmarks at once.
bench: $(VENV)/.installed
	$(BENCH).context_memory --out $(BENCH_OUT)
	$(BENCH).distill_step --out $(BENCH_OUT)
	$(BENCH).data_pipeline --out $(BENCH_OUT)
	$(BENCH).eval_throughput --out $(BENCH_OUT)
	$(BENCH).step_formats --out $(BENCH_OUT)
	$(BENCH).export_latency --out $(BENCH_OUT)
	$(MAKE) --no-print-directory bench-stacks
	$(BENCH).table $(BENCH_OUT)

bench-gpu:
	$(BENCH_GPU_PY) tools/bench_gpu.py --out $(BENCH_OUT) $(BENCH_GPU_FLAGS)

# The GPU check (tools/gpu_check.py; README "GPU check"): the CUDA-marked tests, then the GPU benchmarks, into
# $(GPU_CHECK_OUT)/ (summary.json, table.md) in at most 465 s, in the machine's python3 with the checkout on
# PYTHONPATH and no network. Where that python has no pytest, pytest comes from $(GPU_WHEELS)/: `make gpu-wheels`
# downloads its pure-Python wheels where PyPI is reachable (build/ is git-ignored: carry that folder along).
# GPU_CHECK_FLAGS=--dry-run runs the same on the CPU at tiny sizes, in $(VENV)'s python.
GPU_CHECK_FLAGS ?=
GPU_CHECK_PY ?= $(if $(filter --dry-run,$(GPU_CHECK_FLAGS)),$(PY),python3)
GPU_CHECK_OUT ?= $(BENCH_OUT)/gpu-check
GPU_WHEELS ?= build/gpu-wheels
GPU_WHEELS_PYTHON ?= 3.12
GPU_WHEELS_PIP ?= python3 -m pip
PYTEST_PIN := $(shell sed -nE 's/^(pytest==[^ #]+).*/\1/p' requirements/test.txt)

.PHONY: gpu-check gpu-wheels

gpu-check:
	$(GPU_CHECK_PY) tools/gpu_check.py --out $(GPU_CHECK_OUT) --wheels $(GPU_WHEELS) $(GPU_CHECK_FLAGS)

gpu-wheels:
	$(GPU_WHEELS_PIP) download --disable-pip-version-check --dest $(GPU_WHEELS) --only-binary=:all: \
		--python-version $(GPU_WHEELS_PYTHON) --implementation py --abi none --platform any $(PYTEST_PIN)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# The images (docker/Dockerfile, one file for both stacks; docker/README.md). STACK picks the build arguments,
# docker/stacks/$(STACK).args (the one place a stack's base image, Python, pins, indexes and required GPU architectures
# are written), and the tags: hmkd:<version> and hmkd:latest (legacy), hmkd:<version>-modern and hmkd:modern.
# DOCKER_BUILD_FLAGS adds build arguments after the stack's (CI: a local base and PyPI's wheels, tools/docker/ci.sh);
# DOCKER_SMOKE_FLAGS adds options to the smoke (--gpus, --user, --shm-size), which tools/docker/smoke.py runs from the
# host through the docker SDK (DOCKER_PY: the venv's, with hmkd and the SDK).
IMAGE ?= hmkd
DOCKER ?= docker
DOCKER_PY ?= $(PY)
DOCKER_BUILD_FLAGS ?=
DOCKER_SMOKE_DIR ?= runs/docker-smoke
DOCKER_SMOKE_FLAGS ?=
DOCKER_CI_STACKS ?= legacy modern
DOCKER_STACK_ARGS := docker/stacks/$(STACK).args
HMKD_VERSION := $(shell sed -nE 's/^__version__ = "([^"]+)"/\1/p' hmkd/__init__.py)
IMAGE_TAG := $(HMKD_VERSION)$(if $(filter legacy,$(STACK)),,-$(STACK))
IMAGE_ALIAS := $(if $(filter legacy,$(STACK)),latest,$(STACK))
GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)

.PHONY: docker-build docker-smoke docker-ci

docker-build:
	@test -f $(DOCKER_STACK_ARGS) || { echo "docker-build: no $(DOCKER_STACK_ARGS): STACK is legacy or modern" >&2; \
		exit 2; }
	$(DOCKER) build -f docker/Dockerfile -t $(IMAGE):$(IMAGE_TAG) -t $(IMAGE):$(IMAGE_ALIAS) \
		$(shell sed -nE 's/^([A-Z_]+=[^[:space:]]*)[[:space:]]*$$/--build-arg \1/p' $(DOCKER_STACK_ARGS) 2>/dev/null) \
		--build-arg STACK=$(STACK) --build-arg HMKD_VERSION=$(HMKD_VERSION) --build-arg GIT_COMMIT=$(GIT_COMMIT) \
		$(DOCKER_BUILD_FLAGS) .

docker-smoke:
	$(DOCKER_PY) tools/docker/smoke.py --image $(IMAGE):$(IMAGE_TAG) --shared $(DOCKER_SMOKE_DIR) $(DOCKER_SMOKE_FLAGS)

# What CI runs: its own dockerd, local base images, and for each of DOCKER_CI_STACKS the build of docker/Dockerfile
# with PyPI's wheels, then docker-smoke in it (tools/docker/ci.sh; the smoke driver runs in $(VENV)).
docker-ci: $(VENV)/.installed
	VENV=$(VENV) tools/docker/ci.sh $(DOCKER_CI_STACKS)
