# rmbg-filter: `make demo` runs the main job on a sample clip it makes; `make test` runs every test.
# Both set up what they need first (Debian packages, a venv of the system Python).

PYTHON_SYSTEM ?= /usr/bin/python3
VENV          ?= .venv
PY            := $(VENV)/bin/python
SUDO          := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES  := python3-venv python3-dev ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base \
                 gstreamer1.0-plugins-good gstreamer1.0-python3-plugin-loader python3-gst-1.0 \
                 gir1.2-gst-plugins-base-1.0 gstreamer1.0-libav
# torch 2.13.0 is the release whose CPU wheel this machine image carries for Python 3.11.
TORCH         ?= torch==2.13.0
# VapourSynth's wheels need Python 3.12+: on Debian 13 the system Python serves it from the main
# venv; on Debian 12 a second venv is made from a Python 3.12 (pyenv's here, or python3.12 on PATH).
SYSTEM_MINOR  := $(shell $(PYTHON_SYSTEM) -c 'import sys; print(sys.version_info[1])')
ifeq ($(shell [ "$(SYSTEM_MINOR)" -ge 12 ] && echo new),new)
VS_VENV       ?= $(VENV)
else
VS_VENV       ?= .venv-vs
PYTHON_VS     ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12 python3.13))
endif
VS_PY         := $(VS_VENV)/bin/python

.PHONY: setup test demo docs docs-serve pictures bench quality gst-qos gst-yuv gpu-dry batch-bench fuzz soak lint clean

setup: $(VENV)/.installed $(VS_VENV)/.installed-vs

$(VENV)/.installed: pyproject.toml Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	$(PYTHON_SYSTEM) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,onnx,openvino,ray]"
	@$(PY) -c "import torch, transformers, av, numpy; print('setup: torch', torch.__version__, \
		'transformers', transformers.__version__, 'av', av.__version__, 'numpy', numpy.__version__)"
	touch $@

$(VS_VENV)/.installed-vs: $(VENV)/.installed
	@if [ "$(VS_VENV)" != "$(VENV)" ]; then \
		[ -n "$(PYTHON_VS)" ] || { echo "setup: VapourSynth needs Python 3.12+; install python3.12 or set PYTHON_VS=/path/to/python3.12" >&2; exit 2; }; \
		$(PYTHON_VS) -m venv $(VS_VENV) && $(VS_PY) -m pip install -q --upgrade pip && $(VS_PY) -m pip install -q "$(TORCH)"; \
	fi
	$(VS_PY) -m pip install -q -e ".[vapoursynth,vs-test,onnx,openvino,fuzz]"
	$(VS_VENV)/bin/vapoursynth config
	touch $@

# the tests that time a live pipeline against the clock run alone first; the rest on TEST_WORKERS pytest-xdist
# workers (they share the cores: conftest.py); each run ends with its 10 slowest tests, and both always run
TEST_WORKERS ?= 2
test: setup
	$(PY) -m ruff check rmbg_filter plugins tests scripts conftest.py
	status=0; export RMBG_VS_PYTHON=$(abspath $(VS_PY)); \
	$(PY) -m pytest -q -m serial --durations=10 || status=$$?; \
	$(PY) -m pytest -q -m "not serial" -n $(TEST_WORKERS) --dist loadgroup --durations=10 || status=$$?; \
	exit $$status

# RMBG-1.4 from the Hub (or RMBG_MODEL); without the Hub, one line says so and IS-Net's weights (npm) stand in
demo: setup
	mkdir -p demo
	$(PY) scripts/make_sample.py demo/sample.mp4 640x432 --photo motorcycle_left
	model=$$($(PY) scripts/demo_model.py --note demo/MODEL.txt) && \
	$(VENV)/bin/rmbg-filter video demo/sample.mp4 demo/sample_cutout.mov --preview demo/sample_preview.png \
		--overwrite --model "$$model"
	@cat demo/MODEL.txt

# the documentation site (MkDocs Material) into site/; its references are generated from the code at build time
docs: setup
	RMBG_VS_PYTHON=$(abspath $(VS_PY)) NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: setup
	RMBG_VS_PYTHON=$(abspath $(VS_PY)) NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

# the docs' pictures (docs/images: preview sheet, flicker, edge and spill crops, and the machine they were made on)
# from real photos and the real network; make bench rebuilds the speed/quality plot
pictures: setup $(VENV)/.installed-bench
	$(PY) scripts/doc_pictures.py

# the modes against the seed's loop, then every CPU mode per CPU class (the host's and those it can emulate) with its
# error on real photos, and the speed knobs against quality with their plot (docs/images/speed_quality.png)
bench: setup $(VENV)/.installed-bench
	$(PY) scripts/bench.py
	$(PY) scripts/cpu_bench.py --out docs/cpu_bench.md

$(VENV)/.installed-bench: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[bench]"
	touch $@

# each quality option on IS-Net medium, on clips with a known alpha (about 13 minutes; tests/test_quality_options.py
# is its fast slice in make test)
quality: setup
	$(PY) scripts/quality.py

# the GStreamer element on a live source faster than inference (qos=false, then true) and on a file (about 70 s)
gst-qos: setup
	GST_PLUGIN_PATH=$(abspath plugins/gstreamer) VIRTUAL_ENV=$(abspath $(VENV)) $(PYTHON_SYSTEM) scripts/gst_qos.py \
		--model $$($(PY) -c 'import sys; sys.path.insert(0, "scripts"); from real_network import isnet_onnx; print(isnet_onnx("small"))')

# scripts/gpu_check.sh's whole dry run on the CPU, the compiled configurations too (about 4 minutes on 2 cores;
# make test runs it without them)
gpu-dry: setup
	OUT=$$(mktemp -d) PYTHON=$(abspath $(PY)) bash scripts/gpu_check.sh --dry-run

# I420 straight into the element against videoconvert before it, at 1080p (scripts/gst_yuv.py)
gst-yuv: setup
	GST_PLUGIN_PATH=$(abspath plugins/gstreamer) VIRTUAL_ENV=$(abspath $(VENV)) $(PY) scripts/gst_yuv.py \
		--model $$($(PY) -c 'import sys; sys.path.insert(0, "scripts"); from real_network import isnet_onnx; print(isnet_onnx("medium"))')

# files per minute of rmbg-filter batch: here, and on a local Ray cluster with 1 and 2 workers (about 6 minutes)
batch-bench: setup
	$(PY) scripts/batch_bench.py

# every fuzz test at its full count, fresh random cases each run (about 6 minutes; make test runs a fixed
# slice of each); the last lines add up the cases run
FUZZ_TESTS := tests/test_fuzz_pipe.py tests/test_fuzz_model.py tests/test_gst_reliability.py tests/test_vs_fuzz.py
fuzz: SHELL := /bin/bash
fuzz: setup
	set -o pipefail; RMBG_FUZZ=1 RMBG_VS_PYTHON=$(abspath $(VS_PY)) $(PY) -m pytest -q -p no:cacheprovider -s \
		--hypothesis-show-statistics $(FUZZ_TESTS) 2>&1 | tee fuzz.log; status=$$?; \
	$(PY) scripts/fuzz_summary.py fuzz.log && exit $$status

# resident memory of 10,000 small frames through rmbg-filter pipe and 10,000 buffers through the GStreamer element,
# IS-Net small at model size 32 (about 5 minutes; exit 1 if it grows after warm-up; tests/test_soak.py is the slice)
soak: setup
	$(PY) scripts/soak.py

lint: setup
	$(PY) -m ruff check rmbg_filter plugins tests scripts conftest.py

clean:
	rm -rf $(VENV) $(VS_VENV) demo site .pytest_cache .ruff_cache .hypothesis fuzz.log *.egg-info
