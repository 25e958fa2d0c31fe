# `make demo` and `make test` set everything up from scratch on a fresh clone (package installs only).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# torch first, pinned: an unpinned install resolves to multi-GB CUDA wheels.
TORCH  := torch==2.13.0
# The exact versions of everything installed (pyproject.toml holds ranges): results do not move between installs.
LOCK   := requirements/lock.txt

.PHONY: setup demo test lint lock clean bench-quality bench-fewshot bench-load bench-speed bench-speed-rounds

$(STAMP): pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(LOCK) $(TORCH)
	$(PY) -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/mtst demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

# Real-data quality benchmark (needs ../shared/data): hours on 2 CPU cores; resumable, see docs/training-guide.md.
bench-quality: setup
	bash benchmarks/quality/queue.sh
	$(PY) -m benchmarks.quality report

# Few-shot classification vs SetFit 1.2 (needs ../shared/data): SetFit gets its own venv (its pins are not ours);
# hours on 2 CPU cores (--shots 8 16 first: the goals); resumable; table and plot in docs/few-shot.md.
SETFIT_VENV := .venv-setfit
$(SETFIT_VENV)/bin/python:
	python3 -m venv $(SETFIT_VENV)
	$(SETFIT_VENV)/bin/pip install --quiet -c $(LOCK) $(TORCH)
	$(SETFIT_VENV)/bin/pip install --quiet setfit==1.2.0

bench-fewshot: setup $(SETFIT_VENV)/bin/python
	$(PY) -m benchmarks.fewshot
	$(PY) -m benchmarks.fewshot report

# Serving under load (needs ../shared/data/stsb): ~1.5 min; JSON in benchmarks/load/results/, see docs/serving.md.
bench-load: setup
	$(PY) -m benchmarks.load

# Rewrite $(LOCK) from what .venv holds now (after changing a range in pyproject.toml and reinstalling).
lock:
	{ sed -n '1,2p' $(LOCK); \
	  echo "# Generated $$(date -u +%Y-%m-%d) with Python $$($(PY) -c 'import platform; print(platform.python_version())') on $$(uname -m) Linux."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^#' | grep -vi '^mtst[= @]' | sed -E 's/\+[A-Za-z0-9.]+$$//'; \
	} > $(LOCK).new && mv $(LOCK).new $(LOCK)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache

# Offline inference speed (needs ../shared/data): ~10 min on 2 idle cores; JSON in benchmarks/speed/results/,
# table in docs/speed-tables.md (generated; docs/performance.md explains it).
bench-speed: setup
	$(PY) -m benchmarks.speed

# The speed targets as medians over 5 alternating rounds against sentence-transformers (~15 min on 2 idle cores).
bench-speed-rounds: setup
	$(PY) -m benchmarks.speed --rounds 5 --variants openvino-fp32,onnx-fp32,openvino-int8
