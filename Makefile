# The README's quick start (demo, test) and the developer's loop (CONTRIBUTING.md).
.PHONY: demo test test-fast lint format lock setup

demo:       ## set up and run the installation on the demo collection (default engine)
	scripts/demo.sh

test:       ## set up and run the whole test suite (what CI runs, after lint)
	scripts/test.sh

test-fast:  ## the suite without the tests marked slow (processes, end-to-end engine runs)
	scripts/test.sh -m "not slow"

lint:       ## ruff (lint and format check) and mypy
	scripts/lint.sh

format:     ## format the code and apply ruff's safe fixes
	scripts/setup.sh --full >/dev/null
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

lock:       ## refresh requirements/*.txt from pyproject.toml (then run make test and commit both)
	scripts/setup.sh --full >/dev/null
	scripts/lock.sh

setup:      ## set up everything (diffusion engine, test and dev tools) without running
	scripts/setup.sh --full
