# lamp-study: `make quickstart` sets everything up and runs the main job; `make test` runs every test.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STUDY   ?= quickstart
TRACKING ?= sqlite:///mlflow.db

.PHONY: setup system-deps quickstart test lint bench clean constraints

# Debian packages: Fashion-MNIST (data) and Chromium + ChromeDriver (the report's browser test).
system-deps:
	@bash scripts/system_deps.sh

$(BIN)/lamp-study: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch 2.13.0 first: on CPU-only machines it is a local CPU wheel; a bare `torch` pulls a multi-GB CUDA build.
	$(BIN)/pip install -q "torch==2.13.0"
	# constraints.txt pins every dependency to the versions the test suite passed with.
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	@touch $@

# Regenerate constraints.txt from the current venv (after a deliberate upgrade that passed `make test`).
constraints: $(BIN)/lamp-study
	@{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable | sed -E 's/\+[a-z0-9.]+$$//' | grep -v '^lamp-study'; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt

setup: system-deps $(BIN)/lamp-study

# A second `make quickstart` resumes (a no-op once finished) instead of failing on the existing study.
quickstart: setup
	@[ -f data/quickstart_pool.npz ] || $(BIN)/python scripts/make_pool.py
	@if [ -f lamp_storage/$(STUDY)/lamp_study.json ]; then \
	  $(BIN)/lamp-study resume $(STUDY) --tracking-uri $(TRACKING); \
	else \
	  $(BIN)/lamp-study run search_spaces/$(STUDY).yaml --tracking-uri $(TRACKING); \
	fi
	$(BIN)/lamp-study register $(STUDY) --tracking-uri $(TRACKING)
	$(BIN)/lamp-study report $(STUDY) --tracking-uri $(TRACKING)

test: setup
	$(BIN)/python -m pytest -q -ra

lint: $(BIN)/lamp-study
	$(BIN)/ruff check study reports tests bench
	$(BIN)/ruff format --check study reports tests bench

bench: setup
	$(BIN)/python bench/trial_speed.py
	$(BIN)/python bench/study_overhead.py
	$(BIN)/python bench/report_speed.py

clean:
	rm -rf lamp_storage reports_out mlflow.db mlruns
