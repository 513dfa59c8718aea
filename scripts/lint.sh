#!/usr/bin/env bash
# `make lint`: the checks CI runs before the tests. ruff's and mypy's settings are in
# pyproject.toml; pre-commit (.pre-commit-config.yaml) runs the same ruff on each commit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --full >/dev/null
echo "lint: ruff check"; .venv/bin/ruff check .
echo "lint: ruff format --check"; .venv/bin/ruff format --check .
echo "lint: mypy"; .venv/bin/mypy
