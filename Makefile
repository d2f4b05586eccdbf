# `make demo` and `make test` set everything up in .venv/ first (tools/setup.sh), then run.
VENV := .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_out

.PHONY: setup demo test bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt tools/setup.sh
	bash tools/setup.sh

test: setup
	$(PY) -m pytest -q tests

demo: setup
	$(PY) Piano_render.py --midi examples/schumann_polonaise_op1n4_excerpt.mid --out $(DEMO_OUT)/render --seed 1
	@echo "demo: rendered video, audio, MIDI and box in $(DEMO_OUT)/render/"

bench: setup
	$(PY) -m bench.run_all

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
