# The README's two commands: `make demo` (the main job) and `make test`. Each sets up what it needs.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
BOOT = eval "$$(bash scripts/bootstrap.sh | sed 's/^/export VP_/')"; export VP_COMFYUI; PY="$$VP_VENV/bin/python"

.PHONY: demo test bench eval-prior eval-anchoring setup browser-deps workflows readme-media clean

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

# The embedded prior's evaluation (scripts/eval_embedded_prior.py): held-out sampling accuracy and
# LiveSketch direction matches -> bench/results/embedded_prior_eval.json. About 25 minutes on 2 CPU cores.
eval-prior:
	@$(BOOT); "$$PY" scripts/eval_embedded_prior.py

# Anchoring on / off (frame 0 = the input sketch): 48 distillation runs, about 15 minutes on 2 quiet cores; adds the
# section "anchoring" to bench/results/embedded_prior_eval.json. Then: scripts/write_model_card.py
eval-anchoring:
	@$(BOOT); OMP_WAIT_POLICY=PASSIVE "$$PY" scripts/eval_embedded_prior.py --anchoring --jobs 2 --threads 1

workflows:
	@$(BOOT); "$$PY" scripts/build_workflows.py

readme-media:
	@$(BOOT); "$$PY" scripts/make_readme_media.py

clean:
	rm -rf output bench/results/*.json
