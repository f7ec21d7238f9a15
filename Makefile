# korrigo.ops developer entry points. The README's two commands: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
COLLECTION_LINK := .cache/collections/ansible_collections/korrigo/ops
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.cache/collections
export PYTHONPATH := $(CURDIR)/.cache/collections:$(CURDIR)/tests/stack
export KORRIGO_DSN ?= postgresql://korrigo:stack-secret@127.0.0.1:55432/korrigo

.PHONY: bootstrap test-packages venv stack stack-down seed demo test unit integration molecule lint sanity build bench clean

# System packages and a running dockerd (tests/stack/bootstrap.sh: installs as root, else says what to run).
bootstrap:
	PYTHON=$(PYTHON) tests/stack/bootstrap.sh

venv: $(VENV)/.installed $(COLLECTION_LINK)

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# The repository is the collection; link it where Ansible looks for korrigo.ops.
$(COLLECTION_LINK):
	mkdir -p $(dir $(COLLECTION_LINK))
	ln -sfn ../../../.. $(COLLECTION_LINK)

stack: bootstrap venv
	tests/stack/up.sh

stack-down:
	tests/stack/down.sh

# The demo: an incident of every scenario seeded into the stack, then triage and every remediation it calls for,
# then a five-second summary of the JSON reports.
DEMO_REPORTS := .cache/demo-reports
demo: stack
	$(BIN)/python -m korrigo_stack.seed --reset --scenario baseline --scenario locks --scenario finalization \
		--scenario import_stuck --scenario audit
	rm -rf $(DEMO_REPORTS) && mkdir -p $(DEMO_REPORTS)
	@rc=0; $(BIN)/ansible-playbook playbooks/site.yml -i inventories/local \
		-e korrigo_report_dir=$(CURDIR)/$(DEMO_REPORTS) || rc=$$?; \
	echo; $(BIN)/python tests/stack/demo_summary.py $(DEMO_REPORTS); exit $$rc

test-packages:
	tests/stack/bootstrap.sh test-packages

# The static checks (ansible-lint, ansible-test sanity) need no stack: they run niced beside the integration
# tests and Molecule, which share the one stack and run one after the other. Any failure fails the target.
test: bootstrap test-packages venv stack
	$(MAKE) --no-print-directory unit
	mkdir -p .cache; rm -f .cache/static-checks.rc; \
	( nice -n 15 $(MAKE) --no-print-directory lint sanity > .cache/static-checks.log 2>&1; \
	  echo $$? > .cache/static-checks.rc ) & \
	$(MAKE) --no-print-directory integration molecule; rc=$$?; wait; \
	echo "=== static checks (ansible-lint, ansible-test sanity)"; cat .cache/static-checks.log; \
	static=$$(cat .cache/static-checks.rc 2>/dev/null || echo 1); \
	[ $$rc -eq 0 ] && [ $$static -eq 0 ]

unit: venv
	$(BIN)/pytest -q tests/unit

integration: stack
	$(BIN)/pytest -q tests/integration

# --base-config explicitly: Molecule only finds .config/molecule/config.yml by itself in a git checkout.
molecule: stack
	$(BIN)/molecule --base-config .config/molecule/config.yml test --all

lint: venv
	$(BIN)/ansible-lint --profile production

sanity: venv
	tests/sanity/run.sh

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path .cache/dist

# Every scenario at scale against its floor (benchmarks/bench.py; docs/benchmarks.md). BENCH_ARGS e.g.
# "--only read_path --keep" (keep the district database between runs) or "--quick" (small N, development).
BENCH_ARGS ?= --keep
bench: stack
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf .cache .pytest_cache
