"""The soak's short form (issue 15's drill): ``benchmarks/soak.py`` for 40 s.

Real processes: ``art2mus engine serve`` and ``art2mus kiosk`` (Qt offscreen, normal mode)
on one database, the kiosk's player on a private JACK dummy server, a simulated visitor
every 2 s and a curator adding, renaming and deleting images every 8 s. The full benchmark
runs 30 minutes (``PYTHONPATH=. python benchmarks/soak.py``); this form catches what shows in
a minute: errors and tracebacks logged, underruns, a fast leak, an artwork left without
music, a curator's file changed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

# benchmarks/ is not a package: the test reuses the benchmark as it is, not a copy of it.
import soak

SECONDS = 40.0
# Underruns on the busy 2-core CI machine (load average 2.3: other jobs, and the engine
# composing the collection's first clips on the same cores while the kiosk starts): 0-9 in
# the first 40 s, 17 in 5 minutes (measured, 2026-11-29). A stream that stalls gives dozens
# of underruns a second (one per 21-ms block), so the bound still tells the two apart.
MAX_UNDERRUNS = 15
# Measured growth after warm-up over 40-60 s: -1 to +10 MB per process (the kiosk enters
# attract mode after 20 s and loads its slides); a leak of a decoded
# 6-s clip per touch (2.3 MB at 48 kHz stereo float32) would pass 40 MB within the run.
MAX_GROWTH_MB = 40.0


@pytest.mark.slow
@pytest.mark.audio
def test_a_short_soak_runs_clean(tmp_path):
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        pytest.skip("jackd is needed (apt install jackd2)")
    lines: list[str] = []
    result = soak.run_soak(
        SECONDS, tmp_path, visitor_every=2.0, curator_every=8.0, sample_every=5.0, say=lines.append
    )
    soak.report(result, say=lines.append)
    text = "\n".join(lines)
    print(text)  # the figures, in the test's output with -s or on failure

    assert result.exit_codes["engine"] == 0 and result.exit_codes["kiosk"] == 0, text
    for name in ("engine", "kiosk"):
        assert result.errors(name) == [], text
        assert result.tracebacks[name] == 0, text
    assert result.underruns is not None, "the kiosk's beacon gave no audio figures\n" + text
    assert result.underruns <= MAX_UNDERRUNS, text
    assert result.restarts == 0, text
    for name in ("engine", "kiosk"):
        assert result.growth_mb(name) < MAX_GROWTH_MB, text
    assert result.touches >= SECONDS / 2 / 1.5 - 2, text
    assert result.added >= 1, text
    assert result.artworks >= 8 and result.without_clip == [], text
    assert result.changed_files == [], text
