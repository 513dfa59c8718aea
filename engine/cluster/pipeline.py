"""`art2mus pregenerate --ray`: a collection's clips made across machines with Ray Data.

The head node (where the database lives, and the only process that opens it) builds the
manifest of the clips still missing (engine/cluster/manifest.py), and streams it through

    read manifest → decode (CPU tasks) → EngineActor (one per GPU) → finish (CPU tasks)

Ray Data runs the stages concurrently with back-pressure: images are decoded while the GPUs
generate, and FLAC encoding and file writes never hold a GPU. Each finished clip is a file in the
clip folder (content-addressed, written atomically by the node that made it: the folder must
be on storage every node mounts at the same path); only its metadata row flows back to the
head node, which imports the rows into the store a batch per transaction
(``ClipStore.import_clips``). An interrupted run loses at most the batches in flight: run it
again and the manifest leaves out what was imported.

Where the database's own clip folder is not on shared storage, ``stage`` names a shared
folder: the nodes write there, and the head node copies each file into the store (checking its
hash) before it imports the row, then removes the staged copy.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.engines.registry import clip_duration
from engine.store.clip_files import ClipFiles, clip_folder
from engine.store.clips import ClipStore, ImportedClip, clip_params, clip_params_hash
from engine.worker import candidates_for

from .manifest import ClipKey, as_table, missing_clips

if TYPE_CHECKING:
    from engine.config import Config
    from engine.engines.base import Engine
    from engine.store.db import Database

log = logging.getLogger(__name__)

# Rows imported per transaction on the head node.
IMPORT_BATCH = 256


@dataclass
class ClusterSummary:
    planned: int = 0  # clips the manifest asked for
    imported: int = 0
    skipped: int = 0  # already in the store when imported (another run got there first)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def connect(address: str, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address`` ("auto": the one this node belongs to; "ray://HOST:
    10001": through Ray Client), or start a Ray on this machine ("local")."""
    import ray

    if ray.is_initialized():
        return  # already connected (a test's local Ray, or a caller's)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address == "local":
        ray.init(num_cpus=num_cpus, **kwargs)
    else:
        ray.init(address=address, **kwargs)


def cluster_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def pregenerate_on_ray(
    db: Database,
    config: Config,
    engine: Engine,
    *,
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    stage: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> ClusterSummary:
    """Make every missing clip of the store's ready artworks on the connected Ray cluster and
    import them; ``engine`` (loaded on the head node) names the key the clips go under."""
    import ray.data

    started = time.monotonic()
    summary = ClusterSummary()
    duration = clip_duration(config, engine.name)
    key = ClipKey(engine.name, engine.model_version, clip_params_hash(engine, duration))
    candidates = candidates_for(int(config.engine.candidates), engine)  # 0: as the worker resolves it
    rows = missing_clips(db, Path(config.collection.path), key, candidates, int(config.engine.seed))
    summary.planned = len(rows)
    if not rows:
        return summary
    gpus = cluster_gpus()
    per_actor = (1.0 if gpus else 0.0) if gpus_per_actor is None else gpus_per_actor
    # One actor per GPU of the cluster (Ray places them); without GPUs one CPU actor.
    size = actors or (max(1, math.floor(gpus / per_actor)) if per_actor else 1)
    if stage is not None and stage.resolve() == clip_folder(db.path).resolve():
        stage = None  # the store's own folder: nothing to copy (and nothing to remove after)
    folder = stage or clip_folder(db.path)
    batch = max(1, int(config.engine.batch_size))
    log.info(
        "ray: %d clips to make with %d %s actors (%s GPU each), files into %s",
        len(rows),
        size,
        engine.name,
        per_actor,
        folder,
    )
    dataset = (
        ray.data.from_arrow(as_table(rows))
        .map(partial(_decode, max_pixels=int(config.catalog.max_image_pixels)), num_cpus=1)
        .map_batches(
            _engine_actor(),
            fn_constructor_args=(
                config,
                engine.name,
                engine.model_version,
                duration,
                "cuda" if per_actor else "cpu",
            ),
            batch_size=batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size),
            num_gpus=per_actor or None,
            num_cpus=None if per_actor else 1,
        )
        .map(partial(_finish, clip_folder=str(folder)), num_cpus=1)
    )
    store = ClipStore(db)
    params = clip_params(engine, duration)
    staged = ClipFiles(folder) if stage is not None else None
    for result in dataset.iter_batches(batch_size=IMPORT_BATCH, batch_format="numpy"):
        made = _imported(result, duration, summary)
        if staged is not None:
            for clip in made:  # into the store's folder, checked against its hash
                store.files.write(staged.read(clip.audio_sha256))
        new = store.import_clips(made, engine.name, engine.model_version, params)
        summary.imported += new
        summary.skipped += len(made) - new
        if staged is not None:
            for clip in made:
                staged.delete(clip.audio_sha256)
        if progress is not None:
            progress(len(result["seed"]))
    summary.seconds = time.monotonic() - started
    return summary


def _imported(result: dict[str, Any], duration: float, summary: ClusterSummary) -> list[ImportedClip]:
    """The batch's clips to import; its errors go to the summary."""
    made = []
    for i in range(len(result["seed"])):
        error = str(result["error"][i])
        if error:
            summary.errors.append(error)
            continue
        score, loudness = float(result["score"][i]), float(result["loudness_lufs"][i])
        made.append(
            ImportedClip(
                image_hash=str(result["image_hash"][i]),
                artwork_id=int(result["artwork_id"][i]),
                seed=int(result["seed"][i]),
                duration=duration,
                sample_rate=int(result["sample_rate"][i]),
                channels=int(result["channels"][i]),
                audio_sha256=str(result["audio_sha256"][i]),
                audio_size=int(result["audio_size"][i]),
                caption=str(result["caption"][i]),
                score=None if math.isnan(score) else score,
                loudness_lufs=None if math.isnan(loudness) else loudness,
                loop_start=int(result["loop_start"][i]),
                loop_end=int(result["loop_end"][i]),
            )
        )
    return made


# Ray pickles the stage functions by reference: module-level names, imported on every node.
def _decode(row: dict[str, Any], max_pixels: int) -> dict[str, Any]:
    from .stages import decode

    return decode(row, max_pixels)


def _finish(row: dict[str, Any], clip_folder: str) -> dict[str, Any]:
    from .stages import finish

    return finish(row, clip_folder)


def _engine_actor() -> type:
    from .stages import EngineActor

    return EngineActor
