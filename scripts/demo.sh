#!/usr/bin/env bash
# Set up and run the whole installation on the demo collection: the kiosk in demo mode runs
# the catalog, the default engine (in a child process) and the audio player (`make demo`).
#
# Without a display (a server, a container) the kiosk runs on a virtual one under xvfb-run
# (nothing to look at, but the music plays and the logs show it working); with
# ART2MUS_DEMO_WINDOWED=1 it opens as a normal window instead of full screen.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
DB=${ART2MUS_DEMO_DB:-.demo/art2mus.db}
args=(kiosk --collection content/demo --db "$DB")
[[ "${ART2MUS_DEMO_WINDOWED:-0}" == "1" ]] && args+=(--windowed)
if [[ -n "${DISPLAY:-}" || -n "${WAYLAND_DISPLAY:-}" ]]; then
  echo "demo: the kiosk opens full screen. To leave it: hold the top-left corner for 3 s," >&2
  echo "demo: enter the curator PIN 2468, press 'Exit to desktop' twice (or Ctrl+C here)." >&2
  exec .venv/bin/art2mus -v "${args[@]}"
elif command -v xvfb-run >/dev/null 2>&1; then
  echo "demo: no display found (DISPLAY/WAYLAND_DISPLAY unset): running the kiosk on a virtual" >&2
  echo "demo: screen with xvfb-run; stop it with Ctrl+C. See docs/kiosk.md." >&2
  exec xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/art2mus -v "${args[@]}"
else
  echo "demo: no display found (DISPLAY/WAYLAND_DISPLAY unset) and xvfb-run is not installed." >&2
  echo "demo: run it from a desktop session, or install xvfb (apt install xvfb)." >&2
  exit 1
fi
