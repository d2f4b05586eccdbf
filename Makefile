# `make demo` and `make test` set everything up in .venv/ first (tools/setup.sh), then run.
VENV := .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_out
APP_OUT ?= app_out
APP_PORT ?= 8000
BENCH_SECONDS ?= 60

.PHONY: setup demo test app bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt tools/setup.sh
	bash tools/setup.sh

test: setup
	$(PY) -m pytest -q tests

demo: setup
	$(PY) Audeo.py examples/demo_schumann.mp4 --out $(DEMO_OUT) --reference examples/demo_schumann.mid

app: setup
	$(PY) Audeo_app.py --out $(APP_OUT) --port $(APP_PORT)

bench: setup
	$(PY) bench/bench_video2roll.py --presets fast paper --json bench/video2roll.json
	$(PY) bench/bench_pipeline.py --repeat-to $(BENCH_SECONDS) --json bench/pipeline.json --markdown bench/README.md

clean:
	rm -rf $(DEMO_OUT) $(APP_OUT) .pytest_cache
