# Every target installs what it needs: a fresh clone runs `make demo` or `make test` alone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The pinned set is about 8.3 GiB installed (torch's CUDA libraries alone are 4 GiB), .venv-tf216
# 1.3 GiB; `make test` on a fresh clone took up to 12.3 GiB more disk (pip holds the downloaded
# wheels until it has installed them all). pip's cache would keep a second copy of every wheel, so it is off.
export PIP_NO_CACHE_DIR := 1
NEED_GIB ?= 14

.PHONY: install demo lint test test-fast test-python test-android apk clean fashion

install: $(STAMP)

# Fashion-MNIST (60k/10k) comes from Debian's dataset-fashion-mnist; installed when missing.
FASHION := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
fashion:
	@test -f $(FASHION) || { SUDO=$$(test "$$(id -u)" -eq 0 || echo sudo); \
	  ($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	  || { echo "error: could not install Debian's dataset-fashion-mnist; run: apt-get install dataset-fashion-mnist" >&2; exit 2; }; }

# The stamp depends on pyproject.toml, so changing a pin reinstalls.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) tools/check_disk.py . $(NEED_GIB)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check pip==24.3.1
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

demo: install
	$(PY) -m vqexport.zoo.demo

# Lint first: it takes seconds and fails before minutes of tests.
test: lint test-python test-android

lint: install
	$(PY) -m ruff check vqexport tests tools android-demo

# The fast tier, under 2 minutes: no litert-torch or LiteRT (tests/conftest.py makes them
# unimportable there), no training, no Fashion-MNIST. `make test` runs these and the rest.
test-fast: install
	$(PY) -m pytest -q -m "not tflite and not slow" tests

# TF 2.16.1's interpreter, the runtime the Android app ships: the TFLite tests run every exported
# model in it too. Its own venv: TensorFlow 2.16.1 cannot share one with the pinned set.
TF216 := .venv-tf216
$(TF216)/.installed: tools/tflite216-requirements.txt
	test -x $(TF216)/bin/python || $(PYTHON) -m venv $(TF216)
	$(TF216)/bin/python -m pip install -q --disable-pip-version-check -r tools/tflite216-requirements.txt
	touch $@

test-python: install fashion $(TF216)/.installed
	VQEXPORT_TF216_PYTHON=$(CURDIR)/$(TF216)/bin/python $(PY) -m pytest -q tests

apk: install
	bash android-demo/build.sh

test-android: install
	bash android-demo/test.sh

clean:
	rm -rf build android-demo/build out
