# energy formula: `make demo` deploys a local demo cluster, `make test` runs every test.
# Both set up what they need on a fresh Debian 12 machine as root.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: all deps venv engine images lint reference test unit integration demo stop bench clean
all: test

# libpfm4: tests/unit/test_libpfm4_tables.py checks the event tables with it (through ctypes)
deps:
	@command -v debootstrap >/dev/null && python3 -m venv --help >/dev/null 2>&1 && ldconfig -p | grep -q 'libpfm.so.4 ' || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap python3-venv libpfm4 >/dev/null; }

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

venv: deps $(VENV)/.installed

engine: deps
	bash scripts/engine.sh

images: venv engine
	PYTHON=$(abspath $(PY)) bash tests/images/build.sh

# Checks that need no engine: ruff (ruff.toml), salt-lint (.salt-lint) on every SLS file, yamllint
# (.yamllint) on the plain YAML files (the SLS files with Jinja are yamllinted once Salt rendered
# them: tests/functional/test_lint.py), docs/reference.md not stale (`make reference`).
SLS := $(shell find energy examples -name '*.sls' | sort)
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/salt-lint $(SLS)
	$(VENV)/bin/yamllint -s energy/defaults.yaml pillar.example FORMULA .yamllint .salt-lint $$(grep -LE '\{[%{#]|^#!py' $(SLS))
	$(PY) scripts/reference.py --check

# docs/reference.md from the docstrings of the SLS files, modules, states, runners and grains
reference: venv
	$(PY) scripts/reference.py

unit: venv
	$(PY) -m pytest tests/unit tests/functional -q $(PYTEST_ARGS)

integration: images
	$(PY) -m pytest tests/integration -q -p no:cacheprovider $(PYTEST_ARGS)

# pytest's outcome is printed again at the very end: the Salt daemons the tests stop log their
# SIGTERM after pytest's own summary, which would otherwise end the output
test: lint images
	@mkdir -p .cache; set -o pipefail; \
	$(PY) -m pytest tests -q -p no:cacheprovider -rfE $(PYTEST_ARGS) 2>&1 | tee .cache/pytest.log; status=$$?; \
	echo "--- make test: pytest's outcome (whole output in .cache/pytest.log)"; \
	grep -E '^(FAILED|ERROR) |^[0-9]+ (passed|failed|error)|(passed|failed|errors?) in [0-9.]+s' .cache/pytest.log | tail -40; \
	exit $$status

demo: images
	$(PY) scripts/demo.py up

stop: venv
	$(PY) scripts/demo.py down

bench: venv
	$(PY) benchmarks/placement.py

clean: stop
	rm -rf .cache/wheels
