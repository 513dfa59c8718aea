#!/usr/bin/env bash
# Set up and run the installation on the demo collection with the default engine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
DB=${ART2MUS_DEMO_DB:-.demo/art2mus.db}
.venv/bin/art2mus catalog scan content/demo --db "$DB"
