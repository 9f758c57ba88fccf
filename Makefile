# The two commands a newcomer needs (see README.md). Each bootstraps .venv/ by itself.
.PHONY: run test lint unit bench report help

help:
	@echo "make run    - the main job: simulated lab (or DGXSPARK_INVENTORY) + site.yml end to end"
	@echo "make test   - every test: unit, integration, lint"
	@echo "make bench  - preflight speed benchmark"

run:
	@scripts/run.sh $(ARGS)

test:
	@scripts/test.sh

lint:
	@scripts/bootstrap.sh && .venv/bin/ansible-lint

bench:
	@scripts/bootstrap.sh && .venv/bin/python scripts/bench_preflight.py
