# The verbs users type. `make setup test` is what CI runs (.ci/run).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help setup test smoke docker-build docker-smoke bench clean

help:
	@echo "make setup        create $(VENV) (Python 3.8) with the image's pinned stack"
	@echo "make test         run the test suite (CPU, tiny models)"

$(VENV)/.installed: requirements/stack.txt requirements/test.txt pyproject.toml tools/setup_env.sh
	tools/setup_env.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
