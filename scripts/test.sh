#!/usr/bin/env bash
# Set up everything and run the whole test suite with a real audio device: a JACK server
# on the dummy driver plays in real time with no sound card. We stop it by its process id.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --full

export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
export JACK_NO_AUDIO_RESERVATION=1
JACK_PID=""
cleanup() { [[ -n "$JACK_PID" ]] && kill "$JACK_PID" 2>/dev/null && wait "$JACK_PID" 2>/dev/null; true; }
trap cleanup EXIT
if ! jack_lsp >/dev/null 2>&1; then
  jackd --no-realtime -d dummy -r 48000 -p 1024 >/tmp/art2mus-jackd.log 2>&1 &
  JACK_PID=$!
  for _ in $(seq 50); do jack_lsp >/dev/null 2>&1 && break; sleep 0.1; done
fi
.venv/bin/python -m pytest "$@"
