"""PortAudio's life cycle, made safe for a JACK server that dies under an open stream.

Two PortAudio behaviours (checked with PortAudio 19.6 on JACK 2) shape this module:

* When the JACK server goes away, stopping or closing a stream waits up to ten minutes on a
  condition that only the dead server would signal (``RealStop`` in ``pa_jack.c``), and
  ``Pa_Terminate`` first closes open streams, so it waits too.
* ``Pa_Terminate`` on a PortAudio whose JACK client lost its server aborts the process (an
  ``assert`` on ``jack_deactivate``).

So a PortAudio instance that had a JACK client when the server died is never stopped or
terminated: it is abandoned, kept loaded (its callbacks must stay mapped), and a fresh
PortAudio is loaded from a private copy of the shared library — a separate copy has its own
global state, so ``Pa_Initialize`` really re-scans the devices and sees a restarted JACK server.
Each abandoned instance costs a few hundred kilobytes; the supervisor gives up to systemd
(a clean process) after ``MAX_ABANDONED`` of them. Instances without JACK (ALSA only) are
re-initialised the ordinary way with ``Pa_Terminate``/``Pa_Initialize``.

sounddevice's exit handler terminates PortAudio at interpreter exit, which hangs or aborts in
the same situation; :func:`install` replaces it with one that terminates PortAudio only when
that is safe (no JACK client, or a JACK server that still answers), within a time limit.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import shutil
import tempfile
import threading

log = logging.getLogger(__name__)

MAX_ABANDONED = 50

_graveyard: list = []  # abandoned (library handle, stream) pairs, kept alive on purpose
_copies_dir: str | None = None
_installed = False


def sd():
    """The sounddevice module (imported on first use: importing it initialises PortAudio)."""
    import sounddevice

    install(sounddevice)
    return sounddevice


def install(sounddevice) -> None:
    global _installed
    if not _installed:
        atexit.unregister(sounddevice._exit_handler)
        atexit.register(_exit_handler)
        _installed = True


def _exit_handler() -> None:
    """Terminate PortAudio at exit where that cannot hang or abort the process.

    Leaving a live JACK client behind makes libjack crash during exit, so a client whose
    server still answers is closed properly; one whose server is gone is left alone.
    """
    import sys

    mod = sys.modules.get("sounddevice")
    if mod is None or mod._initialized <= 0:
        return
    try:
        if has_jack() and not jack_server_alive():
            return
    except Exception:
        return

    def terminate() -> None:
        while mod._initialized > 0:
            mod._terminate()

    call_with_timeout(terminate, 3.0)


def jack_server_alive() -> bool:
    """True when the JACK server (JACK_DEFAULT_SERVER) accepts a client right now."""
    try:
        lib = ctypes.CDLL("libjack.so.0")
    except OSError:
        return False
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_client_close.argtypes = [ctypes.c_void_p]
    status = ctypes.c_int(0)
    no_start_server = 0x01
    client = lib.jack_client_open(b"art2mus-probe", no_start_server, ctypes.byref(status))
    if not client:
        return False
    lib.jack_client_close(client)
    return True


def abandoned_count() -> int:
    return len(_graveyard)


def has_jack() -> bool:
    return any("JACK" in h["name"] for h in sd().query_hostapis())


def call_with_timeout(fn, timeout: float) -> bool:
    """Run ``fn`` in a daemon thread; True if it returned (or raised) within ``timeout``."""
    done = threading.Event()
    errors: list = []

    def run() -> None:
        try:
            fn()
        except Exception as exc:  # a failing close is fine: we only need it to return
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="portaudio-call", daemon=True).start()
    finished = done.wait(timeout)
    if errors:
        log.debug("PortAudio call failed: %s", errors[0])
    return finished


def close_stream(stream, timeout: float = 1.0) -> bool:
    """Abort and close ``stream``; False when PortAudio hangs (its server is gone)."""
    if stream is None:
        return True
    mod = sd()
    lib = mod._lib

    def stop() -> None:
        stream.abort(ignore_errors=True)
        # If the abort hung and we moved on to a fresh PortAudio, this stream belongs to the
        # abandoned one: closing it through the new library would be wrong.
        if mod._lib is lib:
            stream.close(ignore_errors=True)

    return call_with_timeout(stop, timeout)


def reinitialize(stuck_stream=None) -> None:
    """Re-scan the devices: a fresh PortAudio when the current one cannot be terminated.

    ``stuck_stream`` is a stream that could not be closed (kept alive with its instance).
    """
    mod = sd()
    if stuck_stream is None and not has_jack():
        ok = call_with_timeout(lambda: (mod._terminate(), mod._initialize()), 5.0)
        if ok:
            return
        log.warning("PortAudio did not terminate in time; loading a fresh instance")
    _load_fresh_instance(mod, stuck_stream)


def _load_fresh_instance(mod, stuck_stream) -> None:
    global _copies_dir
    if _copies_dir is None:
        _copies_dir = tempfile.mkdtemp(prefix="art2mus-portaudio-")
    _graveyard.append((mod._lib, stuck_stream))
    src = _library_path(mod)
    copy = os.path.join(_copies_dir, f"libportaudio-{len(_graveyard)}.so")
    shutil.copyfile(src, copy)
    mod._lib = mod._ffi.dlopen(copy)
    os.unlink(copy)  # stays mapped; nothing is left behind on disk
    mod._initialized = 0
    mod._initialize()
    log.info("loaded a fresh PortAudio (%d abandoned so far)", len(_graveyard))


def _library_path(mod) -> str:
    """The file of the PortAudio library this process has mapped."""
    with open("/proc/self/maps") as fh:
        for line in fh:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if "libportaudio" in os.path.basename(path) and os.path.exists(path):
                return path
    raise OSError(f"cannot locate the PortAudio library ({mod._libname}) to load it afresh")
