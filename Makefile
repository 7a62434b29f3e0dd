# mapservice — the two commands of the README's quick start:
#   make run    installs what is missing, prepares the embedded database with demo data, serves
#   make test   installs what is missing (PostGIS, Chromium), finds or starts PostGIS, runs pytest
VENV   ?= .venv
PYTHON ?= python3
HOST   ?= 127.0.0.1
PORT   ?= 5000
PYTEST_ARGS ?=

.PHONY: run test translations venv system-deps system-deps-test db clean

run: system-deps $(VENV)/.installed
	$(VENV)/bin/mapservice init-db
	$(VENV)/bin/mapservice import-demo
	$(VENV)/bin/mapservice serve --host $(HOST) --port $(PORT)

test: system-deps-test $(VENV)/.installed-test
	tools/with-postgis.sh $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# UI translations (mapservice/translations/<lang>/LC_MESSAGES/messages.po): extract every _()/_l()
# string into messages.pot, merge it into each language's catalog (creating a missing one), compile
# the .mo files that are shipped. Run it after adding or changing a UI string, then translate the new
# (empty or "fuzzy") entries; tests/test_i18n.py fails until every catalog is complete.
TRANSLATIONS ?= mapservice/translations
UI_LANGUAGES ?= de en ar fa uk tr
PYBABEL       = $(VENV)/bin/pybabel

translations: | $(PYBABEL)
	mkdir -p $(TRANSLATIONS)
	$(PYBABEL) -q extract -F babel.cfg -k _l -c TRANSLATORS: --project=mapservice \
		--copyright-holder='the mapservice contributors' \
		--ignore-dirs='.* _* node_modules build dist instance' -o $(TRANSLATIONS)/messages.pot .
	@for lang in $(UI_LANGUAGES); do \
		if [ -f $(TRANSLATIONS)/$$lang/LC_MESSAGES/messages.po ]; then \
			$(PYBABEL) -q update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) -l $$lang || exit 1; \
		else \
			$(PYBABEL) -q init -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) -l $$lang || exit 1; \
		fi; \
	done
	$(PYBABEL) compile -d $(TRANSLATIONS) --statistics

# pybabel comes with flask-babel; a translation run does not reinstall an existing venv
$(PYBABEL):
	$(MAKE) $(VENV)/.installed

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
