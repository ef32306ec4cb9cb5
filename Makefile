# The verbs users type. `make setup test` is what CI runs (.ci/run).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
HMKD := $(PY) -m hmkd
SMOKE_DIR ?= runs/smoke

.PHONY: help setup test smoke docker-build docker-smoke bench clean

help:
	@echo "make setup        create $(VENV) (Python 3.8) with the image's pinned stack"
	@echo "make test         run the test suite (CPU, tiny models)"
	@echo "make smoke        the main job on synthetic data: teacher, student, HMKD student, results table (SMOKE_DIR=$(SMOKE_DIR))"

$(VENV)/.installed: requirements/stack.txt requirements/test.txt pyproject.toml tools/setup_env.sh
	tools/setup_env.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# Stages with a DONE marker are skipped: `make smoke` again only prints the table (rm -r $(SMOKE_DIR) to rerun).
smoke: $(VENV)/.installed
	$(HMKD) train configs/synthetic/segformer_teacher.yaml --run-dir $(SMOKE_DIR)/teacher
	$(HMKD) train configs/synthetic/deeplabv3_student.yaml --run-dir $(SMOKE_DIR)/student
	$(HMKD) distill configs/synthetic/hmkd_segformer_b0_to_deeplabv3_r18.yaml --run-dir $(SMOKE_DIR)/hmkd \
		teacher.checkpoint=$(SMOKE_DIR)/teacher/model.pth
	@$(HMKD) report $(SMOKE_DIR)/teacher $(SMOKE_DIR)/student $(SMOKE_DIR)/hmkd

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
