# The README's two commands: `make demo` (the main job) and `make test`. Each sets up what it needs.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
# torch's OpenMP threads (libgomp) spin at every barrier by default; on a machine whose cores are busy
# the spinning threads steal the time slices the working threads need (beside two CPU-bound processes a
# LiveSketch iteration took 19.7 s spinning, 0.71 s sleeping; bench/bench_busy.py). libgomp reads this once, when
# torch is imported, so it must be in the environment of every Python process we start.
export OMP_WAIT_POLICY ?= PASSIVE
BOOT = eval "$$(bash scripts/bootstrap.sh | sed 's/^/export VP_/')"; export VP_COMFYUI; PY="$$VP_VENV/bin/python"

.PHONY: demo test bench bench-busy-suite eval-prior eval-anchoring setup browser-deps workflows readme-media clean conformance

setup:
	@$(BOOT); echo "venv: $$VP_VENV"; echo "ComfyUI: $$VP_COMFYUI"

demo:
	@$(BOOT); "$$PY" scripts/demo.py

browser-deps:
	@bash scripts/install_browser.sh

test: browser-deps
	@$(BOOT); "$$PY" -m pytest -q --timeout=900 tests

bench:
	@$(BOOT); "$$PY" bench/run_all.py

# `make test`'s pytest command beside two CPU-bound processes: wall time -> bench/results/busy_suite.json.
bench-busy-suite: browser-deps
	@$(BOOT); "$$PY" bench/bench_busy.py --suite

# The embedded prior's evaluation (scripts/eval_embedded_prior.py): held-out sampling accuracy and
# LiveSketch direction matches -> bench/results/embedded_prior_eval.json. About 25 minutes on 2 CPU cores.
eval-prior:
	@$(BOOT); "$$PY" scripts/eval_embedded_prior.py

# Anchoring on / off (frame 0 = the input sketch): 48 distillation runs, about 15 minutes on 2 quiet cores; adds the
# section "anchoring" to bench/results/embedded_prior_eval.json. Then: scripts/write_model_card.py
eval-anchoring:
	@$(BOOT); "$$PY" scripts/eval_embedded_prior.py --anchoring --jobs 2 --threads 1

workflows:
	@$(BOOT); "$$PY" scripts/build_workflows.py

readme-media:
	@$(BOOT); "$$PY" scripts/make_readme_media.py

clean:
	rm -rf output bench/results/*.json

# SVG loader conformance on the resvg test suite (not part of `make test`: the suite is not in this repo).
# SUITE = a checkout's crates/resvg/tests/tests (github.com/linebender/resvg). Writes bench/results/svg_conformance.json.
conformance:
	@test -n "$(SUITE)" || { echo "usage: make conformance SUITE=/path/to/resvg/crates/resvg/tests/tests"; exit 2; }
	@$(BOOT); "$$PY" scripts/svg_conformance.py "$(SUITE)" $(if $(NOTES),--notes "$(NOTES)") $(if $(CAUSES),--causes "$(CAUSES)")
