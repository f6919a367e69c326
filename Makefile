# One command to set up, one to test (see README). Works on a fresh Debian machine with Python >= 3.11.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# int8 models are calibrated on LFW faces: built at setup where the data set sits beside the checkout
FETCH_ENV := $(if $(wildcard ../shared/datasets/lfw/pairs.txt),FACEPRINT_LFW=$${FACEPRINT_LFW:-../shared/datasets/lfw},)

.PHONY: setup system-packages test models bench-speed

# Debian packages the tests use: PostgreSQL (a throwaway server per test run) and Chromium with its
# driver (the web page's browser test). Installed only where missing.

setup: system-packages
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,plots,server,milvus,batch,ray,openvino]'
	@if command -v npm >/dev/null; then npm ci --prefix tests/reference --no-audit --no-fund --loglevel=error; \
	  else echo "npm not found: the TF.js reference check will be skipped"; fi
	$(FETCH_ENV) $(BIN)/faceprint models fetch
	$(BIN)/python tests/runner_venv.py >/dev/null  # the export test's clean virtualenv (.venv-runner)
	$(BIN)/python tests/reference_models.py  # Human graphs the TF.js converter test checks

system-packages:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

# Bytecode written up front: where PYTHONDONTWRITEBYTECODE is set, every `faceprint` process the
# tests start would otherwise compile the package from source again (0.3 s of a 1 s start here).
test:
	$(BIN)/python -m compileall -q faceprint
	$(BIN)/pytest -q

models:
	$(FETCH_ENV) $(BIN)/faceprint models fetch

# Speed side by side with face_recognition 1.3.0, which gets its own venv (prebuilt dlib-bin wheel,
# face_recognition itself with --no-deps so pip never tries to compile dlib). See docs/benchmarks.md.
FR_VENV := benchmarks/.venv-fr
BENCH_ARGS ?=

$(FR_VENV)/.done:
	$(PY) -m venv $(FR_VENV)
	$(FR_VENV)/bin/pip install -q --upgrade pip
	$(FR_VENV)/bin/pip install -q --only-binary=dlib-bin dlib-bin numpy Pillow Click face-recognition-models==0.3.0 \
	  "setuptools<81"  # face_recognition_models needs pkg_resources; venvs on Python 3.12+ have none
	$(FR_VENV)/bin/pip install -q --no-deps face_recognition==1.3.0
	$(FR_VENV)/bin/python -c "import face_recognition"
	touch $@

# The stronger anchor (issue 15): face_recognition on dlib compiled here from PyPI's source against
# Debian's OpenBLAS (AVX on, as dlib's Python build sets it on a CPU that has it). About 16 minutes to
# build on 2 cores, once; the venv is kept like the one above.
FR_BLAS_VENV := benchmarks/.venv-fr-blas

$(FR_BLAS_VENV)/.done:
	@missing=""; \
	dpkg -s libopenblas-dev >/dev/null 2>&1 || missing="libopenblas-dev"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi
	$(PY) -m venv $(FR_BLAS_VENV)
	$(FR_BLAS_VENV)/bin/pip install -q --upgrade pip wheel "setuptools<81" cmake
	$(FR_BLAS_VENV)/bin/pip install -q --no-binary dlib --no-build-isolation dlib==20.0.1 numpy Pillow Click \
	  face-recognition-models==0.3.0
	$(FR_BLAS_VENV)/bin/pip install -q --no-deps face_recognition==1.3.0
	$(FR_BLAS_VENV)/bin/python -c "import dlib, face_recognition; assert dlib.DLIB_USE_BLAS, 'dlib built without BLAS'"
	touch $@

bench-speed: $(FR_VENV)/.done $(FR_BLAS_VENV)/.done
	$(BIN)/python benchmarks/speed.py --lfw ../shared/datasets/lfw --fr-python $(FR_VENV)/bin/python \
	  --fr-blas-python $(FR_BLAS_VENV)/bin/python --out benchmarks/results/speed.json $(BENCH_ARGS)
