# Set-up contract: each target creates or refreshes .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,detect,toy,app,metrics,pose,onnx]'
	# scenedetect would pull opencv-python 5.x over the headless 4.14 (which has the Haar/HOG detectors)
	$(PY) -m pip install -q --no-deps scenedetect==0.7.2
	touch $(STAMP)

venv: $(STAMP)

test: venv  # tests/test_doctests.py runs every docstring example in src/mraa
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -x --durations=10

demo: venv
	$(PY) -m mraa demo

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
