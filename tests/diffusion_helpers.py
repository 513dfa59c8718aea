"""Helpers for the diffusion tests: tiny random bundles, made once per test process."""

from __future__ import annotations

import json
from pathlib import Path

# --------------------------------------------------------------------------- tiny bundles

_BUNDLES: dict[str, Path] = {}
_ROOT: list[Path] = []


def tiny_bundle(kind: str = "clip") -> Path:
    """A tiny random bundle, made once per test process (read-only: copy it to change it)."""
    import atexit
    import shutil
    import tempfile

    from engine.engines.diffusion.bundle import make_tiny_bundle

    if kind not in _BUNDLES:
        if not _ROOT:
            _ROOT.append(Path(tempfile.mkdtemp(prefix="art2mus-test-bundles-")))
            atexit.register(shutil.rmtree, _ROOT[0], True)
        folder = _ROOT[0] / f"tiny-{kind}"
        make_tiny_bundle(folder, encoder_kind=kind)
        _BUNDLES[kind] = folder
    return _BUNDLES[kind]


def copy_bundle(tmp_path: Path, kind: str = "clip") -> Path:
    import shutil

    dest = tmp_path / "bundle"
    shutil.copytree(tiny_bundle(kind), dest)
    return dest


def rehash(folder: Path, rel: str) -> None:
    """Record a file's new sha256 in the manifest (to test checks beyond the hashes)."""
    from engine.engines.diffusion.bundle import MANIFEST, sha256_file

    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][rel] = sha256_file(folder / rel)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
