# The verbs users type. `make setup test` is what CI runs (.ci/run).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
HMKD := $(PY) -m hmkd
SMOKE_ROOT ?= runs

.PHONY: help setup test smoke docker-build docker-smoke bench clean

help:
	@echo "make setup        create $(VENV) (Python 3.8) with the image's pinned stack"
	@echo "make test         run the test suite (CPU, tiny models)"
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

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
