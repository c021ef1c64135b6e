# The two commands of the README:
#   make demo   install into .venv, then run the whole DAG on the embedded demo data
#   make test   install into .venv, then run the test suite
VENV ?= .venv
PYTHON ?= python3
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install demo test lint clean-results

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e ".[test]"
	touch $@

demo: install
	snakemake --cores all
	snakemake --cores all --report results/report.html

test: install
	pytest

lint: install
	snakemake --lint

clean-results:
	rm -rf results logs checkpoints data/prepared
