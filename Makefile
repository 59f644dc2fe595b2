# Everything a fresh machine needs is installed from here.
# TORCH can be overridden, e.g. TORCH="torch --index-url https://download.pytorch.org/whl/cpu".
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test bench demo demo-model clean

DEMO_PROMPT ?= a red circle moving to the right

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

bench: $(STAMP)
	$(PY) bench/model_speed.py
	$(PY) bench/train_speed.py

# The project's main job: a prompt in, an mp4 out. Uses the bundled demo model when it is installed
# (src/lumina_video/demo_model); until then, the same pipeline with random weights (the video is noise).
demo: $(STAMP)
	@if [ -d src/lumina_video/demo_model ]; then \
		$(VENV)/bin/lumina-video generate "$(DEMO_PROMPT)" --out outputs/demo; \
	else \
		echo "note: the bundled demo model is not trained yet; running the whole pipeline (MiniLM text encoder, Multi-scale Next-DiT sampler, CogVideoX-architecture VAE, H.264 writer) on random weights, so the video is noise"; \
		test -f runs/tiny_pipeline/model_index.json || $(PY) -m lumina_video.testing runs/tiny_pipeline; \
		$(VENV)/bin/lumina-video generate "$(DEMO_PROMPT)" --model runs/tiny_pipeline --out outputs/demo; \
	fi

# Train the bundled demo model from scratch on this machine (resumable; see scripts/demo_recipe.sh).
demo-model: $(STAMP)
	bash scripts/demo_recipe.sh

clean:
	rm -rf $(VENV) build src/*.egg-info
