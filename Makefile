# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# aepp, Adobe's Python client for AEP (tests/e2e/test_aepp_client.py drives openseg with it), goes in without
# its declared dependencies: they include pygraphviz (a C build against Graphviz) and matplotlib, networkx, rdflib
# and datamodel-code-generator, none of which its catalog, ingestion, segmentation, profile or data-access
# modules import. What those do import (pandas, requests, deprecation) is in the test extra of pyproject.toml.
AEPP := aepp==0.6.0
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml; echo '$(AEPP)') | cksum | cut -d' ' -f1)

.PHONY: run test bench install clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/pip install --quiet --no-deps '$(AEPP)'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/openseg serve --demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q $(PYTEST_ARGS)

# The UI's browser tests drive Debian's Chromium (nothing is downloaded at test time): install it once.
browser:
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .openseg
