# The verbs users type. `make setup test` is what CI runs (.ci/run).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
HMKD := $(PY) -m hmkd
SMOKE_ROOT ?= runs

.PHONY: help setup test smoke bench bench-distill clean

help:
	@echo "make setup        create $(VENV) (Python 3.8) with the image's pinned stack"
	@echo "make test         run the test suite (CPU, tiny models)"
	@echo "make bench        benchmarks (JSON in $(BENCH_OUT)/): distillation overhead, HFA memory, HMKD vs KD vs CE"
	@echo "make smoke        the main job: jobs/smoke.yaml (teacher, student, HMKD student, report) on this machine"

$(VENV)/.installed: requirements/stack.txt requirements/test.txt pyproject.toml tools/setup_env.sh
	tools/setup_env.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# jobs/smoke.yaml through the launcher on this machine. Stages with a DONE marker are skipped: `make smoke` again
# only prints the report (rm -r $(SMOKE_ROOT)/smoke to rerun).
smoke: $(VENV)/.installed
	$(HMKD) submit jobs/smoke.yaml --local --set root=$(SMOKE_ROOT)

# Benchmarks, not tests: JSON under $(BENCH_OUT)/ and a printed line per figure.
BENCH_OUT ?= results
bench-distill: $(VENV)/.installed
	$(PY) -m hmkd.benchmarks.context_memory --out $(BENCH_OUT)
	$(PY) -m hmkd.benchmarks.distill_step --out $(BENCH_OUT)
	$(PY) -m hmkd.benchmarks.distill_quality --out $(BENCH_OUT)

bench: bench-distill

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# The image (docker/Dockerfile; docker/README.md). DOCKER_BUILD_FLAGS adds build arguments (CI: a local base and CPU
# wheel sources, tools/docker/ci.sh); DOCKER_SMOKE_FLAGS adds options to the smoke (--gpus, --user, --shm-size).
IMAGE ?= hmkd
DOCKER ?= docker
DOCKER_PY ?= $(PY)
DOCKER_BUILD_FLAGS ?=
DOCKER_SMOKE_DIR ?= runs/docker-smoke
DOCKER_SMOKE_FLAGS ?=
HMKD_VERSION := $(shell sed -nE 's/^__version__ = "([^"]+)"/\1/p' hmkd/__init__.py)
GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)

.PHONY: docker-ci

docker-build:
	$(DOCKER) build -f docker/Dockerfile -t $(IMAGE):$(HMKD_VERSION) -t $(IMAGE):latest \
		--build-arg HMKD_VERSION=$(HMKD_VERSION) --build-arg GIT_COMMIT=$(GIT_COMMIT) $(DOCKER_BUILD_FLAGS) .

docker-smoke:
	$(DOCKER_PY) -m hmkd.dockersmoke --image $(IMAGE):$(HMKD_VERSION) --shared $(DOCKER_SMOKE_DIR) $(DOCKER_SMOKE_FLAGS)

# What CI runs: its own dockerd, a local base image, the CPU build of docker/Dockerfile, then docker-smoke in it.
docker-ci: $(VENV)/.installed
	tools/docker/ci.sh
