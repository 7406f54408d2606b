# Set-up and the two README commands. Everything lives in .venv inside the checkout.
#   make run    - create .venv, install, run the main job
#   make test   - create .venv, install (with the [cluster] extra: SLURM launcher, Optuna), run the test suite
# TORCH_PINS: this project's machines install torch/torchvision from local files; on your machine
# any newer release works, e.g. `make test TORCH_PINS="torch torchvision"`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: install run test info bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[dev,cluster]'
	touch $@

install: $(VENV)/.installed

# The main job: yolov7-tiny at half width on the built-in shapes data, on the CPU (its time and mAP: docs/benchmarks.md).
run: install
	$(VENV)/bin/yolov7-train

info: install
	@for v in yolov7-tiny yolov7 yolov7x yolov7-w6 yolov7-e6 yolov7-d6 yolov7-e6e; do \
		echo "== $$v"; $(VENV)/bin/yolov7-info model=$$v || exit 1; done

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/model_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
