# digitlab: `make run` starts the app, `make test` runs every test, `make bench` the benchmarks.
# Each creates .venv and installs what is missing first (torch, pinned Python deps, npm lockfile).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
TORCH  ?= torch==2.13.0
VENDOR := src/digitlab/web/vendor
ARGS   ?=

.PHONY: setup system run test bench clean

setup: $(VENV)/.installed $(VENDOR)/.installed

# Debian packages for the tests and benchmarks (chromium, dataset-fashion-mnist, npm, gcc):
# installed when missing (root or passwordless sudo), else a one-line stop with the command to run.
system:
	@bash scripts/system-deps.sh

# torch first and on its own: a bare `torch` requirement would pull a multi-GB CUDA build (DEVELOPERS.md).
$(VENV)/.installed: pyproject.toml setup.py requirements.lock src/digitlab/training/kernels.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH)"
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .   # also compiles the fused CPU kernels (setup.py)
	touch $@

# Front-end libraries from the npm lockfile, copied next to the page (served locally, never a CDN).
$(VENDOR)/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css \
	   node_modules/comlink/dist/esm/comlink.min.mjs \
	   node_modules/onnxruntime-web/dist/ort.wasm.min.mjs \
	   node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.mjs \
	   node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm $(VENDOR)/
	touch $@

run: setup
	$(VENV)/bin/digitlab serve $(ARGS)

test: system setup
	$(PY) -m pytest -q $(ARGS)

bench: system setup
	$(PY) bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache bench/results/*.json
