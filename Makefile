# mapservice — the two commands of the README's quick start:
#   make run    installs what is missing, prepares the embedded database with demo data, serves
#   make test   installs what is missing (PostGIS, Chromium), finds or starts PostGIS, runs pytest
VENV   ?= .venv
PYTHON ?= python3
HOST   ?= 127.0.0.1
PORT   ?= 5000
PYTEST_ARGS ?=

.PHONY: run test venv system-deps system-deps-test db clean

run: system-deps $(VENV)/.installed
	$(VENV)/bin/mapservice init-db
	$(VENV)/bin/mapservice import-demo
	$(VENV)/bin/mapservice serve --host $(HOST) --port $(PORT)

test: system-deps-test $(VENV)/.installed-test
	tools/with-postgis.sh $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

system-deps:
	tools/system-deps.sh run

system-deps-test:
	tools/system-deps.sh test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(VENV)/bin/pip install -q --prefer-binary -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/bin/python pyproject.toml
	$(VENV)/bin/pip install -q --prefer-binary -e '.[test]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) instance build *.egg-info
