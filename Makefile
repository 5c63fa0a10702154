# rmbg-filter: `make demo` runs the main job on a sample clip it makes; `make test` runs every test.
# Both set up what they need first (Debian packages, a venv of the system Python).

PYTHON_SYSTEM ?= /usr/bin/python3
VENV          ?= .venv
PY            := $(VENV)/bin/python
SUDO          := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES  := python3-venv python3-dev ffmpeg
# torch 2.13.0 is the release whose CPU wheel this machine image carries for Python 3.11.
TORCH         ?= torch==2.13.0

.PHONY: setup test demo bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	$(PYTHON_SYSTEM) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,onnx]"
	@$(PY) -c "import torch, transformers, av, numpy; print('setup: torch', torch.__version__, \
		'transformers', transformers.__version__, 'av', av.__version__, 'numpy', numpy.__version__)"
	touch $@

test: setup
	$(PY) -m ruff check rmbg_filter tests scripts
	$(PY) -m pytest -q

demo: setup
	mkdir -p demo
	$(PY) scripts/make_sample.py demo/sample.mp4
	$(VENV)/bin/rmbg-filter video demo/sample.mp4 demo/sample_cutout.mov --preview demo/sample_preview.png --overwrite

bench: setup
	$(PY) scripts/bench.py

lint: setup
	$(PY) -m ruff check rmbg_filter tests scripts

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache *.egg-info
