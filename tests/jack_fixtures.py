"""A private JACK dummy server for real-stream audio tests (a pytest plugin).

The server runs in real time with no sound card (``jackd --no-realtime -d dummy``) under a
name of its own, so tests never meet another process's server. JACK_DEFAULT_SERVER is set as
this plugin loads, before anything initialises PortAudio, so the player in the test process
finds this server. The server is stopped by its process id.

``JackRecorder`` is a JACK client that records what the player's output ports carry: the
tests check the sound that actually leaves the process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

SERVER_NAME = f"art2mus-test-{os.getpid()}"
RATE = 48000
PERIOD = 1024

os.environ["JACK_DEFAULT_SERVER"] = SERVER_NAME
os.environ["JACK_NO_START_SERVER"] = "1"  # a client must never launch a server by itself
os.environ.setdefault("JACK_NO_AUDIO_RESERVATION", "1")


class JackServer:
    """A jackd process on the dummy driver: start, kill, restart."""

    def __init__(
        self,
        name: str = SERVER_NAME,
        rate: int = RATE,
        period: int = PERIOD,
        log_path: str | None = None,
        realtime: bool = False,
    ) -> None:
        self.name, self.rate, self.period = name, rate, period
        # Real-time scheduling (as on the exhibition PC) where the machine allows it; the
        # tests use --no-realtime, which needs no privileges.
        self.realtime = realtime
        self.log_path = log_path or f"/tmp/{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 20.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "jackd",
                    "-n",
                    self.name,
                    "-R" if self.realtime else "--no-realtime",
                    "-t",
                    "5000",
                    "-d",
                    "dummy",
                    "-r",
                    str(self.rate),
                    "-p",
                    str(self.period),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.proc.returncode}; see {self.log_path}")
            if self.is_up():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"jackd did not come up in {timeout} s; see {self.log_path}")

    def is_up(self) -> bool:
        env = dict(os.environ, JACK_DEFAULT_SERVER=self.name)
        r = subprocess.run(["jack_lsp", "-s", self.name], env=env, capture_output=True, timeout=10)
        return r.returncode == 0 and b"system:playback" in r.stdout

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def ensure_running(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.start()


class JackRecorder:
    """Records the player's output ports into a preallocated buffer, with frame times."""

    def __init__(
        self,
        server: str = SERVER_NAME,
        seconds: float = 60.0,
        channels: int = 2,
        name: str = "art2mus-recorder",
    ) -> None:
        import jack

        self.client = jack.Client(name, servername=server, no_start_server=True)
        self.rate = self.client.samplerate
        self.ports = [self.client.inports.register(f"in_{i + 1}") for i in range(channels)]
        self.data = np.zeros((int(seconds * self.rate), channels), np.float32)
        self.block_frame = np.zeros(len(self.data) // 16 + 16, np.int64)  # JACK frame time per block
        self.block_index = np.zeros_like(self.block_frame)  # where each block starts in data
        self.block_time = np.zeros(len(self.block_frame))  # time.monotonic() when it arrived
        self.blocks = 0
        self.pos = 0
        self.recording = False
        self.xruns = 0
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()

    def _xrun(self, delay) -> None:
        self.xruns += 1

    def _process(self, frames: int) -> None:
        if not self.recording or self.pos + frames > len(self.data):
            return
        if self.blocks < len(self.block_frame):
            self.block_frame[self.blocks] = self.client.last_frame_time
            self.block_index[self.blocks] = self.pos
            self.block_time[self.blocks] = time.monotonic()
            self.blocks += 1
        for i, port in enumerate(self.ports):
            self.data[self.pos : self.pos + frames, i] = port.get_array()
        self.pos += frames

    def player_ports(self) -> list[str]:
        """Output ports of the newest other client (after a recovery the abandoned PortAudio
        client may still be registered as "PortAudio", the new one as "PortAudio-01")."""
        own = self.client.name + ":"
        names = [
            p.name
            for p in self.client.get_ports(is_output=True, is_audio=True)
            if not p.name.startswith(("system:", own))
        ]
        by_client: dict[str, list[str]] = {}
        for name in names:
            by_client.setdefault(name.split(":")[0], []).append(name)
        if not by_client:
            return []

        def age(client: str) -> int:
            suffix = client.rsplit("-", 1)[-1]
            return int(suffix) if "-" in client and suffix.isdigit() else 0

        return sorted(by_client[max(by_client, key=age)])

    def connect_player(self, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = self.player_ports()
            if len(ports) >= len(self.ports):
                for src, dst in zip(ports, self.ports, strict=False):  # extra player ports stay unrecorded
                    self.client.connect(src, dst)
                return ports
            time.sleep(0.05)
        raise AssertionError(f"no player output ports appeared in {timeout} s")

    def start(self) -> None:
        self.recording = True

    def stop(self) -> np.ndarray:
        self.recording = False
        return self.data[: self.pos].copy()

    def record(self, seconds: float) -> np.ndarray:
        self.start()
        time.sleep(seconds)
        return self.stop()

    def frame_time(self) -> int:
        return self.client.frame_time

    def index_of_frame(self, frame: int) -> int:
        """Position in ``data`` of the JACK frame ``frame`` (recorded blocks only)."""
        n = self.blocks
        i = int(np.searchsorted(self.block_frame[:n], frame, side="right")) - 1
        i = max(i, 0)
        return int(self.block_index[i] + (frame - self.block_frame[i]))

    def close(self) -> None:
        try:
            self.client.deactivate()
            self.client.close()
        except Exception:
            pass


def _require_jackd() -> None:
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        pytest.skip("jackd is not installed (apt install jackd2): real-stream audio tests need it")
    try:
        import jack  # noqa: F401
    except Exception as exc:  # the JACK-Client package or libjack missing
        pytest.skip(f"the JACK-Client package cannot load ({exc}): pip install JACK-Client")


@pytest.fixture(scope="session")
def jack_server():
    """The session's private JACK server (tests that kill it leave it restarted)."""
    _require_jackd()
    server = JackServer()
    server.start()
    if "sounddevice" in sys.modules:  # PortAudio was initialised before the server existed
        from installation.audio import portaudio

        portaudio.reinitialize()
    yield server
    server.stop()


@pytest.fixture
def jack(jack_server):
    """The running server, restarted first if an earlier test left it down."""
    if jack_server.proc is None or jack_server.proc.poll() is not None:
        jack_server.start()
    return jack_server


@pytest.fixture
def recorder(jack):
    rec = JackRecorder(server=jack.name)
    yield rec
    rec.close()
