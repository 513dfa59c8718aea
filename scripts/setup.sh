#!/usr/bin/env bash
# Set up Art2Mus on this machine: system packages (apt), a virtual environment in .venv,
# and the Python packages. Safe to run again; it only installs what is missing.
#
#   scripts/setup.sh            the installation (kiosk, player, default engine)
#   scripts/setup.sh --full     also the diffusion engine, training and the test tools
#   scripts/setup.sh --headless also a virtual screen and a dummy audio device, for the demo
#                               on a machine with neither (a server, a container)
set -euo pipefail
cd "$(dirname "$0")/.."

FULL=0
HEADLESS=0
for arg in "$@"; do
  case "$arg" in
    --full) FULL=1 ;;
    --headless) HEADLESS=1 ;;
    *) echo "setup: unknown option $arg (expected --full or --headless)" >&2; exit 2 ;;
  esac
done

APT_PACKAGES=(
  python3-venv
  libportaudio2 libsndfile1 libfluidsynth3          # audio output, FLAC, SoundFont synth
  libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0   # Qt 6 runtime
  libfontconfig1 libdbus-1-3 libglib2.0-0 fonts-dejavu-core
  fonts-ebgaramond fonts-inter                      # the kiosk's typefaces (serif titles, sans text)
  libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1
)
if (( FULL )); then
  APT_PACKAGES+=(jackd2 xvfb xdotool)                # real audio stream and screen in tests
  APT_PACKAGES+=(systemd)                            # systemd-analyze verifies the units in tests
elif (( HEADLESS )); then
  APT_PACKAGES+=(jackd2 xvfb)                        # dummy audio device and virtual screen
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  # jackd2 asks whether to enable real-time scheduling; answer for it.
  echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv

# Python packages come from a lock (requirements/, refreshed by `make lock`): exact versions
# with hashes, so every machine gets the set the tests passed with. torch is in the lock too,
# pinned to the build for the machine, so nothing can pull several GB of CUDA wheels where
# there is no GPU: the CPU build (from pip's configured wheel folder or index; see
# scripts/lock.sh) without nvidia-smi, PyPI's CUDA build with it.
lock=requirements/base.txt
if (( FULL )); then
  if command -v nvidia-smi >/dev/null 2>&1; then lock=requirements/cuda.txt; else lock=requirements/cpu.txt; fi
fi
stamp=.venv/.art2mus-lock
if [[ "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum "$lock" pyproject.toml)" ]]; then
  echo "setup: installing the Python packages of $lock"
  # (A pip configured with local wheel folders warns for each package they lack: not ours.)
  .venv/bin/python -m pip install -q --require-hashes --no-deps -r "$lock" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  # The project itself, editable; its dependencies are all in the lock already.
  .venv/bin/python -m pip install -q --no-deps -e .
  # Packages of another lock (a --full venv set up without --full later) are left in place:
  # only a lock's own packages are checked, here.
  .venv/bin/python -m pip check >/dev/null || { .venv/bin/python -m pip check; exit 1; }
  sha256sum "$lock" pyproject.toml > "$stamp"
fi
echo "setup: ready (.venv, $lock)"
