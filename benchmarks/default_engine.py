"""Benchmark of the default engine on the demo collection, on one CPU core.

Prints, for 30-s clips of every demo painting:
- the time per clip (wall and CPU, best and median of the repeats) and the real-time factor,
  plus the first clip of a fresh process (one-time set-up included);
- the whole `art2mus generate` process on one core (start-up, imports, image loading, WAV
  writing included) over 24 or more paintings (the demo paintings, each also mirrored and as a
  detail, plus any --images), CPU time (user+sys of the child, the honest figure on a shared
  machine) and wall time, as a real-time factor;
- whether the same image, duration and seed give a bit-identical clip (same engine, and a
  fresh engine);
- the musical choices (key, mode, tempo, metre, instruments, notes, caption);
- loudness (pyloudnorm) and true peak (4x oversampling), and the loop seam: the jump from the
  last sample to the first against the clip's own sample-to-sample steps;
- repetition, as a visitor who stays two minutes hears it (see benchmarks/repetition.py): the
  share of the score's notes heard again 1-8 bars later, and how alike the sound is to the
  sound 2-8 s later over a 2-minute listen, against a control (the clip's own bar over and
  over); with --before CHECKOUT, the same figures for an earlier version's engine beside them;
- "listening by proxy": the key heard in the audio (chroma against Krumhansl's key profiles),
  the spectral centroid, and how alike the clips' long-term spectra are.

Run:  PYTHONPATH=. python benchmarks/default_engine.py [--duration 30] [--repeats 3] [--out DIR]
        [--process-runs 3] [--images FILE_OR_DIR ...] [--before CHECKOUT]

(``--before``: a checkout of an earlier version, e.g. ``git worktree add /tmp/before 6d72f28^``.)
"""

from __future__ import annotations

import os

# One core, one thread: set before numpy/scipy/OpenCV start their thread pools.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[var] = "1"

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def pin_to_one_core() -> str:
    import cv2

    cv2.setNumThreads(1)
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def audio_chroma(audio: np.ndarray, rate: int) -> np.ndarray:
    """Energy per pitch class (C, C#, ...) of the clip, from 50 Hz to 1 kHz (mostly fundamentals)."""
    mono = audio.mean(axis=1)
    n = 8192
    frames = mono[: len(mono) // n * n].reshape(-1, n) * np.hanning(n)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    band = (freqs > 50) & (freqs < 1000)
    midi = 69 + 12 * np.log2(freqs[band] / 440.0)
    return np.bincount(np.round(midi).astype(int) % 12, weights=np.sqrt(power[band]), minlength=12)


def score_chroma(composition) -> np.ndarray:
    """Sounding time per pitch class in the score."""
    chroma = np.zeros(12)
    for voice in composition.voices:
        for note in voice.notes:
            for pitch in note.pitches:
                chroma[pitch % 12] += note.length
    return chroma


def heard_key(chroma: np.ndarray) -> str:
    """The key whose Krumhansl-Kessler profile best matches a pitch-class profile."""
    best, best_r = "", -2.0
    for tonic in range(12):
        for profile, mode in ((MAJOR, "major"), (MINOR, "minor")):
            r = np.corrcoef(np.roll(profile, tonic), chroma)[0, 1]
            if r > best_r:
                best, best_r = f"{NOTE_NAMES[tonic]} {mode}", r
    return best


def spectrum(audio: np.ndarray) -> np.ndarray:
    mono = audio.mean(axis=1)
    frames = mono[: len(mono) // 4096 * 4096].reshape(-1, 4096)
    mag = np.abs(np.fft.rfft(frames * np.hanning(4096), axis=1)).mean(axis=0)
    return mag / np.linalg.norm(mag)


def _digest(audio: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes()).hexdigest()


def _other_process_digest(name: str, duration: float) -> str:
    """The same clip made in a fresh Python process (its sha256)."""
    import subprocess

    code = (
        "import hashlib, numpy as np; from engine.catalog.images import load_rgb; "
        "from engine.engines.default.engine import DefaultEngine; "
        f"a = DefaultEngine().generate(load_rgb('content/demo/{name}.png', max_side=1024), {duration}, 0).audio; "
        "print(hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest())"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def process_images(extra: list[Path], folder: Path) -> list[Path]:
    """The paintings for the whole-process run: each demo painting as it is, mirrored with its
    hues turned a third of the way round the colour wheel, and as a detail (the middle two
    thirds) with its hues turned two thirds round, so that there are 24 paintings with music of
    their own (other keys, modes and instruments: the sound bank is no help between them),
    plus ``extra``."""
    import cv2
    from PIL import Image, ImageOps

    def turned(image, degrees: int):
        hsv = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + degrees // 2) % 180  # OpenCV's hue is 0-179
        return Image.fromarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))

    paths = []
    for p in sorted((ROOT / "content" / "demo").glob("*.png")):
        with Image.open(p) as im:
            rgb = im.convert("RGB")
        w, h = rgb.size
        for suffix, variant in (
            ("", rgb),
            ("-mirror", turned(ImageOps.mirror(rgb), 120)),
            ("-detail", turned(rgb.crop((w // 6, h // 6, w * 5 // 6, h * 5 // 6)), 240)),
        ):
            target = folder / f"{p.stem}{suffix}.png"
            variant.save(target)
            paths.append(target)
    names = {p.stem for p in paths}
    for e in extra:
        for q in sorted(e.iterdir()) if e.is_dir() else [e]:
            # `art2mus generate` names its WAV files after the image: one image per name.
            if q.suffix.lower() in (".png", ".jpg", ".jpeg") and q.stem not in names:
                names.add(q.stem)
                paths.append(q)
    return paths


def whole_process(images: list[Path], duration: float, runs: int) -> None:
    """`art2mus generate` over ``images`` in a fresh process, ``runs`` times, on this process's
    core (the child inherits the affinity): CPU (user+sys) and wall time per run."""
    import resource
    import subprocess
    import tempfile

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "art2mus", "generate", *map(str, images), "--duration", f"{duration:g}",
           "--seed", "0", "--engine", "default"]  # fmt: skip
    audio = len(images) * duration
    print(
        f"\n== whole process: art2mus generate, {len(images)} paintings x {duration:g} s = {audio:g} s of audio =="
    )
    print(" (CPU = user + system time of the child; system time is mostly the kernel's work on the")
    print("  11.5-MB WAV files and fresh memory, which depends on the machine more than on the engine)")
    print(
        f"{'run':>3} {'CPU s':>7} {'user s':>7} {'sys s':>6} {'wall s':>7} {'x real time (CPU)':>18} "
        f"{'(wall)':>7} {'load avg':>8}"
    )
    cpu_times, wall_times = [], []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory() as out:
            load = os.getloadavg()[0]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            done = subprocess.run([*cmd, "--out", out], cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"art2mus generate failed ({done.returncode}):\n{done.stderr}")
        user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
        cpu = user + system
        cpu_times.append(cpu)
        wall_times.append(wall)
        print(
            f"{run:3d} {cpu:7.2f} {user:7.2f} {system:6.2f} {wall:7.2f} {audio / cpu:18.0f} "
            f"{audio / wall:7.0f} {load:8.2f}"
        )
    cpu, wall = statistics.median(cpu_times), statistics.median(wall_times)
    print(
        f"median of {runs}: {cpu:.2f} s CPU, {wall:.2f} s wall -> {audio / cpu:.0f}x real time (CPU), "
        f"{audio / wall:.0f}x (wall); best {audio / min(cpu_times):.0f}x (CPU)"
    )


def print_repetition(clips: dict, images: dict, duration: float, before: Path | None) -> None:
    import json
    import subprocess

    from repetition import figures

    from engine.engines.default.composer import compose
    from engine.engines.default.features import extract_features

    print("\n== repetition over a 2-minute listen (benchmarks/repetition.py) ==")
    print(" notes again: share of the score's notes heard again at the same place N bars later (the")
    print("   worst N of 1-8; the loop itself left out), per voice, and at N = 1;")
    print(" sound again: median correlation of each 4-s window with the sound N s later (the most")
    print("   alike N of 2-8 s; 1.0 = the same sound), and the share of windows with a near copy")
    print("   (> 0.8) 2-8 s later; control: the clip's own second bar played over and over")
    rows = {"now": [figures(n, compose(extract_features(images[n]), duration, 0), c.audio, c.sample_rate)
                    for n, c in clips.items()]}  # fmt: skip
    if before is not None:
        done = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "repetition.py"), "--engine-source", str(before),
             "--demo", str(ROOT / "content" / "demo"), "--duration", f"{duration:g}"],
            cwd=before, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"the engine of {before} failed:\n{done.stderr}")
        # The figures are its last line (pyfluidsynth may print where it found its library first).
        rows = {f"before ({before})": json.loads(done.stdout.strip().splitlines()[-1]), **rows}
    for label, table in rows.items():
        print(f"\n{label}")
        print(
            f"{'painting':34} {'bars':>4} {'notes again':>11} {'at N':>4} {'N = 1':>6} {'sound again':>11} "
            f"{'at s':>5} {'near copies':>11} {'control':>7} {'(copies)':>8}  per voice"
        )
        for r in table:
            voices = " ".join(f"{v}:{x:.0%}" for v, x in r["notes_again_by_voice"].items())
            print(
                f"{r['painting']:34} {r['bars']:4d} {r['notes_again']:11.0%} {r['notes_again_lag']:4d} "
                f"{r['notes_again_lag_1']:6.0%} {r['sound_again']:11.2f} {r['sound_again_lag_s']:5.1f} "
                f"{r['near_copies']:11.0%} {r['control_sound_again']:7.2f} {r['control_near_copies']:8.0%}  {voices}"
            )
        print(
            "median: notes again "
            f"{statistics.median(r['notes_again'] for r in table):.0%}, sound again "
            f"{statistics.median(r['sound_again'] for r in table):.2f}, near copies "
            f"{statistics.median(r['near_copies'] for r in table):.0%} (control "
            f"{statistics.median(r['control_sound_again'] for r in table):.2f}, "
            f"{statistics.median(r['control_near_copies'] for r in table):.0%})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, help="also write the clips as WAV files here")
    ap.add_argument(
        "--process-runs", type=int, default=3, help="runs of the whole-process measurement (0: none)"
    )
    ap.add_argument(
        "--images", type=Path, nargs="*", default=[], help="more paintings for the whole-process run"
    )
    ap.add_argument(
        "--before", type=Path, help="a checkout of an earlier version: its repetition figures beside these"
    )
    args = ap.parse_args()
    core = pin_to_one_core()

    import pyloudnorm
    import soundfile as sf
    from scipy.signal import resample_poly

    from engine.catalog.images import load_rgb
    from engine.engines.default.composer import compose
    from engine.engines.default.engine import DefaultEngine
    from engine.engines.default.features import extract_features

    paths = sorted((ROOT / "content" / "demo").glob("*.png"))
    images = {p.stem: load_rgb(p, max_side=1024) for p in paths}
    d = args.duration
    print(f"default engine benchmark: {len(images)} demo paintings, {d:g}-s clips, one thread, {core}")

    t0, c0 = time.perf_counter(), time.process_time()
    engine = DefaultEngine()
    engine.generate(next(iter(images.values())), d, 0)
    print(
        f"first clip of a fresh process (engine set-up, OpenCV and FFT tables included): "
        f"{time.perf_counter() - t0:.3f} s wall, {time.process_time() - c0:.3f} s CPU"
    )
    print(f"model version {engine.model_version}")

    # Each round on a fresh engine, the paintings in turn: a painting's sounds may come from the
    # sound bank when an earlier painting of the round used them (as in a real run), never
    # from its own earlier rounds.
    walls, cpus, clips = {}, {}, {}
    for _ in range(args.repeats):
        engine = DefaultEngine()
        engine.generate(np.full((64, 64, 3), 128, np.uint8), 5.0, 0)  # the synthesizer, FFT tables
        for name, rgb in images.items():
            t, p = time.perf_counter(), time.process_time()
            clips[name] = engine.generate(rgb, d, 0)
            walls.setdefault(name, []).append(time.perf_counter() - t)
            cpus.setdefault(name, []).append(time.process_time() - p)
    bank = engine.renderer.sounds
    print(
        f"\n== speed ({args.repeats} rounds over the paintings, each on a fresh engine; the machine may be "
        "shared: see CPU time) =="
    )
    print(f"{'painting':34} {'wall best':>9} {'wall med':>9} {'CPU best':>9} {'x real time (best wall)':>24}")
    for name in images:
        print(
            f"{name:34} {min(walls[name]):9.3f} {statistics.median(walls[name]):9.3f} "
            f"{min(cpus[name]):9.3f} {d / min(walls[name]):24.0f}"
        )
    best_wall = statistics.median(min(w) for w in walls.values())
    best_cpu = statistics.median(min(c) for c in cpus.values())
    all_wall = statistics.median(x for w in walls.values() for x in w)
    print(
        f"median over paintings: {best_wall:.3f} s wall (best of {args.repeats}), {all_wall:.3f} s wall "
        f"(all runs), {best_cpu:.3f} s CPU -> {d / best_wall:.0f}x real time (wall), "
        f"{d / best_cpu:.0f}x (CPU)"
    )
    print(
        f"sound bank (synth.py), last round: {bank.rendered} sounds synthesised, {bank.reused} taken from "
        f"the bank (within a clip or from an earlier painting)"
    )

    if args.process_runs > 0:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            whole_process(process_images(args.images, Path(folder)), d, args.process_runs)

    print("\n== determinism ==")
    name = "the-night-cafe" if "the-night-cafe" in images else next(iter(images))
    again = engine.generate(images[name], d, 0)
    fresh = DefaultEngine().generate(images[name].copy(), d, 0)
    other = engine.generate(images[name], d, 1)
    print(
        f"{name}: same engine bit-identical: {np.array_equal(clips[name].audio, again.audio)}; "
        f"fresh engine bit-identical: {np.array_equal(clips[name].audio, fresh.audio)}; "
        f"seed 1 differs: {not np.array_equal(clips[name].audio, other.audio)}"
    )
    print(
        f"{name}: another process bit-identical: {_other_process_digest(name, d) == _digest(clips[name].audio)}"
    )

    print("\n== musical choices ==")
    for name, clip in clips.items():
        x = clip.details
        inst = ", ".join(f"{role}: {prog}" for role, prog in x["instruments"].items())
        print(
            f"{name}\n    {x['key_name']}, {x['tempo_bpm']:g} bpm in {x['metre']}, {x['bars']} bars, "
            f'chords {" ".join(x["chords"])}\n    {inst}\n    notes {x["notes"]}\n    "{clip.caption}"'
        )

    print("\n== loudness, true peak, loop seam ==")
    print(" seam: the step from the last sample to the first; ok when no bigger than the clip's")
    print(" 99th-percentile step or than the largest step at one of its other downbeats (the loop")
    print(" starts on a downbeat, where notes begin)")
    meter = pyloudnorm.Meter(clip.sample_rate)
    print(
        f"{'painting':34} {'LUFS':>7} {'dBTP':>6} {'seam L':>8} {'seam R':>8} {'p99|diff|':>9} "
        f"{'downbeats':>9} {'median':>8} ok"
    )
    for name, clip in clips.items():
        a = clip.audio
        loud = meter.integrated_loudness(a.astype(np.float64))
        looped = np.concatenate([a[-256:], a, a[:256]])
        tp = 20 * np.log10(np.abs(resample_poly(looped, 4, 1, axis=0)).max())
        seam = np.abs(a[0] - a[-1])
        steps = np.abs(np.diff(a, axis=0))
        p99 = np.percentile(steps, 99, axis=0)
        bar = len(a) // clip.details["bars"]
        near = 48  # a millisecond either side: the humanised onsets move a little
        downbeats = np.max([steps[k * bar - near : k * bar + near].max(axis=0) for k in range(1, clip.details["bars"])],
                           axis=0)  # fmt: skip
        ok = bool((seam <= np.maximum(p99, downbeats)).all())
        print(
            f"{name:34} {loud:7.2f} {tp:6.2f} {seam[0]:8.5f} {seam[1]:8.5f} {p99.max():9.5f} "
            f"{downbeats.max():9.5f} {np.median(steps):8.5f} {'yes' if ok else 'NO'}"
        )

    print_repetition(clips, images, d, args.before)

    print("\n== listening by proxy ==")
    print("(heard key: the major/minor key whose profile best matches the audio's pitch classes;")
    print(" a modal key is heard as the major/minor key with the same notes, e.g. E Dorian = D major)")
    specs = {}
    print(" pitch match: correlation of the audio's pitch classes with the score's (1 = the same)")
    print(
        f"{'painting':34} {'composed key':>18} {'heard key':>10} {'pitch match':>11} {'centroid Hz':>11} {'notes':>6}"
    )
    for name, clip in clips.items():
        chroma = audio_chroma(clip.audio, clip.sample_rate)
        key = heard_key(chroma)
        match = np.corrcoef(chroma, score_chroma(compose(extract_features(images[name]), d, 0)))[0, 1]
        mag = np.abs(np.fft.rfft(clip.audio.mean(axis=1)))
        freqs = np.fft.rfftfreq(len(clip.audio), 1 / clip.sample_rate)
        centroid = float((mag * freqs).sum() / mag.sum())
        specs[name] = spectrum(clip.audio)
        print(
            f"{name:34} {clip.details['key_name']:>18} {key:>10} {match:11.2f} {centroid:11.0f} "
            f"{clip.details['note_count']:6d}"
        )
    names = list(specs)
    sims = [float(specs[a] @ specs[b]) for i, a in enumerate(names) for b in names[i + 1 :]]
    print(
        f"long-term spectra, cosine similarity between paintings: max {max(sims):.3f}, "
        f"median {statistics.median(sims):.3f} (1.0 = identical)"
    )

    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, clip in clips.items():
            sf.write(args.out / f"{name}.wav", clip.audio, clip.sample_rate, subtype="FLOAT")
        print(f"\nwrote {len(clips)} clips to {args.out}")


if __name__ == "__main__":
    main()
