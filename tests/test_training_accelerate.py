"""Two CPU processes through `accelerate launch` (gloo) give the result of one process with the
same global batch: each process takes its half of the same global batch, DDP averages."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

import diffusion_helpers as helpers
import training_helpers as data_helpers

ROOT = data_helpers.ROOT


def _rows(run):
    with (run / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    from training.train import main

    common = ["--data", str(data_helpers.prepared_data()), "--model", str(helpers.tiny_bundle("imagebind"))]
    common += ["--max-steps", "4", "--batch-size", "4", "--lr", "1e-3", "--warmup", "1"]
    common += ["--log-every", "1", "--val-every", "2", "--quiet"]
    # `accelerate launch --cpu` runs one process (its multi-CPU path wants mpirun); the torchrun
    # launcher behind --multi_gpu with ACCELERATE_USE_CPU=1 starts two gloo processes.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / 'tests'}"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    r = subprocess.run(
        [*launch, "-m", "training.train", "--out", str(tmp_path / "two"), *common],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert json.loads((tmp_path / "two" / "run.json").read_text())["processes"] == 2
    main(["--out", str(tmp_path / "one"), *common])

    two, one = _rows(tmp_path / "two"), _rows(tmp_path / "one")
    assert [r["step"] for r in two] == [r["step"] for r in one] == ["0", "1", "2", "3", "4"]
    for a, b in zip(two, one, strict=True):
        for key in ("loss", "val_loss"):
            if b[key]:
                assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5), (key, a, b)
    wa = torch.load(tmp_path / "two" / "checkpoint" / "state.pt", weights_only=False)["aligner"]
    wb = torch.load(tmp_path / "one" / "checkpoint" / "state.pt", weights_only=False)["aligner"]
    for key in wb:
        # Adam divides by √v: a gradient near zero that rounds differently moves its weight by ~1e-6
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=2e-5)
    fresh = torch.load(tmp_path / "one" / "checkpoint" / "state.pt", weights_only=False)["step"]
    assert fresh == 4
