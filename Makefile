# Each target is self-sufficient on a fresh machine: it creates .venv and installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo demo-model sprites60-model pictures test bench bench-accel lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# torch is pinned to 2.13.0 in the parity extra: that is the CPU build; never let pip pick a CUDA one. The studio
# extra (gradio) is for the browser test, which installs Debian's chromium itself when it is missing.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,parity,studio]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/wanjax demo

# Retrain the bundled demo checkpoint from scratch (2 CPU cores: 22 min 14 s measured alone on 2026-12-07)
# and install it in wanjax/assets/demo.
demo-model: $(VENV)/.installed
	rm -rf runs/brushsprites
	$(BIN)/wanjax train configs/brushsprites.yaml
	rm -rf wanjax/assets/demo && mkdir -p wanjax/assets && cp -r runs/brushsprites/export wanjax/assets/demo

# Retrain the bundled long-video model from scratch in three stages, install it in wanjax/assets/sprites60, and score
# it over 20 eval clips, pyramid (the config's schedule), synchronous and chained -> bench/longvideo.json (~5 min).
# Stage 1: 2,000 steps, half of them the pyramid way; stage 2: 1,200 steps from its export, every step the pyramid
# way (both without the sub-frame ramp); stage 3: 1,200 steps from stage 2's export with it (the config's
# model.subframe_ramp). Timed in one sitting on 2026-12-07: 2 h 14 min 56 s on 2 cores (README "Long video: measured").
sprites60-model: $(VENV)/.installed
	rm -rf runs/sprites60 runs/sprites60_pyramid runs/sprites60_ramp
	$(BIN)/wanjax train configs/sprites60.yaml model.subframe_ramp=false
	$(BIN)/wanjax train configs/sprites60.yaml model.subframe_ramp=false train.workdir=runs/sprites60_pyramid \
		train.init=runs/sprites60/export train.causal_prob=1.0 train.steps=1200 train.eval_every=400 train.checkpoint_every=400
	$(BIN)/wanjax train configs/sprites60.yaml train.workdir=runs/sprites60_ramp train.init=runs/sprites60_pyramid/export \
		train.causal_prob=1.0 train.steps=1200 train.eval_every=400 train.checkpoint_every=400
	rm -rf wanjax/assets/sprites60 && mkdir -p wanjax/assets && cp -r runs/sprites60_ramp/export wanjax/assets/sprites60
	$(BIN)/python scripts/eval_longvideo.py --ckpt wanjax/assets/sprites60 --clips 20 --schedule pyramid \
		--schedule synchronous --schedule chained --references --json bench/longvideo.json

# The README's pictures, from the bundled models: the demo video, frames 0 4 8 12 16, and its brush overlay; a 60-s
# Sprites60 video from examples/sprites60.png, every 10 s; the brush studio's page (Debian's chromium needed).
pictures: $(VENV)/.installed
	$(BIN)/wanjax demo --out out/pictures
	$(BIN)/python scripts/contact_sheet.py out/pictures/demo --frames 0 4 8 12 16 --png docs/demo.png
	$(BIN)/wanjax sample configs/sprites60.yaml --image examples/sprites60.png --out out/pictures
	$(BIN)/python scripts/contact_sheet.py out/pictures/sample --seconds 0 10 20 30 40 50 60 --png docs/sprites60.png
	$(BIN)/pip install -q -e '.[studio]' playwright
	$(BIN)/python scripts/studio_screenshot.py --png docs/studio.png

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev
	$(BIN)/python scripts/bench.py --json bench/results.json --readme README.md

# The README's memory table: the Wan2.1-I2V-14B train step compiled AOT on 64 fake CPU devices (full fine-tune vs
# LoRA, remat none/dots/full; per-device GB vs a v5p chip's 95 GB) -> bench/memory.json (16 min on 2 shared cores).
.PHONY: bench-memory
bench-memory: $(VENV)/.installed
	$(BIN)/python -m wanjax.bench.memory --json bench/memory.json

# On a GPU or TPU machine, with jax[cuda12] or jax[tpu] in .venv (README, "On an accelerator"; ~5 min estimated on
# one H100): Wan2.1-1.3B forward, train step, sampling, and diffusers' forward where a CUDA torch and diffusers are
# installed (the package only here: the parity extra's pinned torch must not replace the machine's).
bench-accel: $(VENV)/.installed
	$(BIN)/wanjax bench --suite accel --json bench/accel.json

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check wanjax tests scripts
	$(BIN)/ruff format --check wanjax tests scripts

clean:
	rm -rf $(VENV) out
