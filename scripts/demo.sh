#!/usr/bin/env bash
# Set up and run the whole installation on the demo collection (`make demo`): the kiosk in
# demo mode runs the catalog, the default engine (in a child process) and the audio player.
#
# Without a display (a server, a container) the kiosk runs on a virtual screen under
# xvfb-run, and without a sound card it plays into a JACK server on the dummy driver, which
# runs in real time but is silent: the logs (-v) and the curator panel show it working.
# ART2MUS_DEMO_WINDOWED=1 opens a normal window instead of full screen.
set -euo pipefail
cd "$(dirname "$0")/.."

headless=0
[[ -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]] && headless=1
if (( headless )); then scripts/setup.sh --headless; else scripts/setup.sh; fi

DB=${ART2MUS_DEMO_DB:-.demo/art2mus.db}
args=(kiosk --collection content/demo --db "$DB")
[[ "${ART2MUS_DEMO_WINDOWED:-0}" == "1" ]] && args+=(--windowed)

export JACK_NO_START_SERVER=1  # never let a JACK client launch a server on its own
JACK_PID=""
cleanup() { [[ -n "$JACK_PID" ]] && kill "$JACK_PID" 2>/dev/null && wait "$JACK_PID" 2>/dev/null; true; }
trap cleanup EXIT
if ! .venv/bin/art2mus audio devices >/dev/null 2>&1; then
  if ! command -v jackd >/dev/null 2>&1; then
    scripts/setup.sh --headless
  fi
  echo "demo: no audio output device found: playing into a silent JACK dummy device" >&2
  export JACK_DEFAULT_SERVER="art2mus-demo-$$" JACK_NO_AUDIO_RESERVATION=1
  jackd -n "$JACK_DEFAULT_SERVER" --no-realtime -d dummy -r 48000 -p 1024 >.demo-jackd.log 2>&1 &
  JACK_PID=$!
  for _ in $(seq 50); do .venv/bin/art2mus audio devices >/dev/null 2>&1 && break; sleep 0.2; done
fi

if (( ! headless )); then
  echo "demo: the kiosk opens full screen. To leave it: hold the top-left corner for 3 s," >&2
  echo "demo: enter the curator PIN 2468, press 'Exit to desktop' twice (or Ctrl+C here)." >&2
  .venv/bin/art2mus -v "${args[@]}"
else
  echo "demo: no display found (DISPLAY/WAYLAND_DISPLAY unset): running the kiosk on a virtual" >&2
  echo "demo: screen with xvfb-run; stop it with Ctrl+C. See docs/kiosk.md." >&2
  xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/art2mus -v "${args[@]}"
fi
