"""`art2mus audio devices` and `art2mus audio play` against the JACK dummy server."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from audio_signals import F1, F2, RATE, amplitude, sine
from click.testing import CliRunner
from jack_fixtures import JackRecorder

from art2mus.cli import main

pytestmark = pytest.mark.audio


def test_devices_lists_outputs_and_marks_the_chosen_one(jack):
    result = CliRunner().invoke(main, ["audio", "devices"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "system" in line)
    assert line.startswith(">*") and "JACK" in line and "2 out" in line and "48000 Hz" in line
    assert "default output" in result.output


@pytest.mark.slow
def test_play_crossfades_files_in_turn(jack, tmp_path, monkeypatch):
    a, b = tmp_path / "a.wav", tmp_path / "b.flac"
    sf.write(a, sine(F1, 1.5, 0.5), RATE)
    sf.write(b, np.stack([sine(F2, 1.5, 0.5)] * 2, axis=1), RATE)
    recorded = {}

    # Record what the command plays: connect a recorder as soon as the player's ports exist.
    from installation.audio import player as player_module

    real_start = player_module.Player.start

    def start_and_record(self):
        ok = real_start(self)
        rec = JackRecorder(server=jack.name, seconds=10)
        rec.connect_player()
        rec.start()
        recorded["rec"] = rec
        return ok

    monkeypatch.setattr(player_module.Player, "start", start_and_record)
    result = CliRunner().invoke(
        main, ["audio", "play", str(a), str(b), "--crossfade", "0.5", "--volume", "1"]
    )
    rec = recorded["rec"]
    x = rec.stop()[:, 0]
    rec.close()
    assert result.exit_code == 0, result.output
    assert "Playing a.wav" in result.output and "Playing b.flac" in result.output
    assert "Underruns" in result.output
    ga, t = amplitude(x, F1)
    gb, _ = amplitude(x, F2)
    assert ga.max() > 0.45 and gb.max() > 0.45  # both files were heard...
    assert t[np.argmax(gb > 0.25)] > t[np.argmax(ga > 0.25)] + 0.5  # ...in turn
    assert (ga + gb)[np.argmax(ga > 0.4) : np.argmax(gb > 0.45)].min() > 0.4  # no gap between


def test_play_names_a_missing_file(jack, tmp_path):
    result = CliRunner().invoke(main, ["audio", "play", str(tmp_path / "nope.wav")])
    assert result.exit_code != 0 and "nope.wav: file not found" in result.output


def test_play_names_a_file_that_is_not_audio(jack, tmp_path):
    bad = tmp_path / "readme.wav"
    bad.write_text("not audio")
    result = CliRunner().invoke(main, ["audio", "play", str(bad)])
    assert result.exit_code != 0 and "readme.wav" in result.output


@pytest.mark.slow
def test_play_loop_cycles_in_time_and_ctrl_c_fades_out(jack, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, sine(F1, 1.0, 0.5), RATE)
    sf.write(b, sine(F2, 1.0, 0.5), RATE)
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "art2mus",
            "audio",
            "play",
            str(a),
            str(b),
            "--loop",
            "--crossfade",
            "0.3",
        ],
        cwd=root,
        env=dict(os.environ, PYTHONPATH=str(root)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a real Ctrl-C
    )
    time.sleep(5.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    plays = out.count("Playing ")
    assert proc.returncode == 0, out
    # Files of 1 s with 0.3-s crossfades: about 1.4 files a second once the output is open.
    assert 3 <= plays <= 9, out
    assert "Fading out" in out and "Underruns" in out


@pytest.mark.slow
def test_an_engine_clip_played_with_loop_comes_round_after_exactly_its_length(jack, tmp_path, demo_paintings):
    """`art2mus generate` writes the clip's loop (a smpl chunk); `audio play --loop` plays the
    whole clip round and round: the recording repeats with a period of exactly its length."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from engine.loops import read_wav_loop

    painting = demo_paintings[0]
    result = CliRunner().invoke(
        main, ["generate", "--engine", "default", "--duration", "5", "--out", str(tmp_path), str(painting)]
    )
    assert result.exit_code == 0, result.output
    wav = tmp_path / f"{painting.stem}.wav"
    length = sf.info(wav).frames
    assert length == 5 * RATE and read_wav_loop(wav).frames == length

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "art2mus", "audio", "play", str(wav), "--loop", "--crossfade", "0.5"],
        cwd=root,
        env=dict(os.environ, PYTHONPATH=str(root)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    rec = JackRecorder(server=jack.name, seconds=20)
    try:
        rec.connect_player()
        time.sleep(1.0)  # past the fade-in
        x = rec.record(11.0)[:, 0].astype(np.float64)
    finally:
        rec.close()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    span = len(x) - length - RATE
    assert span > 4 * RATE
    ref = x[:span]

    block = 1024

    def matching_blocks(lag: int) -> float:
        """Share of 1024-frame blocks of the recording equal to the same block ``lag`` later.
        Block-wise, so that one late cycle on a busy machine (a dropout the player counts as an
        underrun) spoils only its own blocks, not the verdict."""
        diff = np.abs(x[lag : lag + span] - ref)
        blocks = diff[: span // block * block].reshape(-1, block).max(axis=1)
        return float(np.mean(blocks < 1e-6))

    # The recording comes round after exactly the clip's length, sample for sample...
    share = matching_blocks(length)
    assert share > 0.9, f"not periodic at the clip's length (only {share:.0%} of blocks repeat)"
    # ...and not one second earlier (as when the player folded a 1-s seam into every clip),
    # nor one frame either side.
    for lag in (length - RATE, length - 1, length + 1):
        assert matching_blocks(lag) < 0.1, f"the loop also matches a lag of {lag} frames"
