# Everything a fresh machine needs is installed from here.
# TORCH can be overridden, e.g. TORCH="torch --index-url https://download.pytorch.org/whl/cpu".
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast lint format bench demo demo-model v2a-demo-model clean

DEMO_PROMPT ?= a red circle moving to the right
DEMO_THREADS ?=

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel, so that the package's torch range resolves to it
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# ruff (configured in pyproject.toml): pyflakes, pycodestyle, bugbear, import order, pyupgrade; 120 columns
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench docs

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests bench docs

bench: $(STAMP)
	$(PY) bench/model_speed.py
	$(PY) bench/train_speed.py
	$(PY) bench/data_speed.py
	$(PY) bench/generate_speed.py

# The project's main job: a prompt in, an mp4 out, with the bundled demo model (src/lumina_video/demo_model), and
# its soundtrack from the bundled V2A demo model (src/lumina_video/demo_v2a_model): NAME.mp4 with AAC, NAME.wav.
# 6.6 s on the idle 2-core machine with torch's default threads, 7.1-7.7 s with one (DEMO_THREADS=1: a busy machine).
demo: $(STAMP)
	$(VENV)/bin/lumina-video generate "$(DEMO_PROMPT)" --out outputs/demo --audio $(if $(DEMO_THREADS),--threads $(DEMO_THREADS))

# Train the bundled demo model from scratch on this machine (resumable; see scripts/demo_recipe.sh).
demo-model: $(STAMP)
	bash scripts/demo_recipe.sh

# Train the V2A demo model (video -> soundtrack) from scratch on this machine and score it on held-out clips
# (resumable; see scripts/v2a_demo_recipe.sh).
v2a-demo-model: $(STAMP)
	bash scripts/v2a_demo_recipe.sh

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
