# The two commands of the README:
#   make demo   build, train and compile the tutorial MNIST CNN; print the agreement table
#   make test   run the whole test suite
#   make dist   build the sdist and the wheel into dist/ (what `pip install kcc` installs)
# Each creates .venv with the pinned dependencies on first use (and again when
# pyproject.toml changes); nothing else needs to be installed by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench dist install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test,demo]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m kcc.demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup tests

dist: $(STAMP)
	$(PY) -m build --outdir dist .

bench: $(STAMP)
	$(PY) bench/convert_speed.py

clean:
	rm -rf $(VENV) out dumps dist build
