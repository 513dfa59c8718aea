"""The Art2Mus model bundle: one folder with everything generation needs, and its manifest.

Layout (diffusers' style: one sub-folder per named component, each with its config)::

    unet/              AudioLDM2UNet2DConditionModel
    vae/               AutoencoderKL (mel spectrogram <-> latents)
    vocoder/           SpeechT5HifiGan (mel -> 16 kHz waveform)
    language_model/    GPT-2 (aligner tokens -> 8 "Language of Audio" embeddings)
    scheduler/         DDIMScheduler config
    aligner/           ImageAligner (image embedding -> GPT-2 input tokens)
    encoder/           the vision encoder (CLIP or ImageBind), see encoders.py
    conditioning.safetensors   the stored FLAN-T5 / negative conditioning (see below)
    manifest.json      format version, component and library versions, sha256 of every file

``conditioning.safetensors`` holds exactly what :class:`diffusers.AudioLDM2Pipeline` feeds
its UNet besides the image's LoA embeddings, computed once from the fixed prompt and the
negative prompt when the bundle is built, so FLAN-T5, CLAP and the projection model are
never loaded at run time:

- ``prompt_embeds`` (1, L, D_t5) and ``attention_mask`` (1, L): FLAN-T5 encoding of
  "Music representing the content of this artwork" (the UNet's second stream);
- ``negative_prompt_embeds`` (1, L, D_t5) and ``negative_attention_mask`` (1, L): FLAN-T5
  encoding of "Low quality", padded to the same L as the pipeline does;
- ``negative_generated_prompt_embeds`` (1, 8, D_lm): the GPT-2 LoA embeddings the pipeline
  generates for "Low quality" from CLAP + FLAN-T5 through the projection model (the first
  stream of the unconditional branch of classifier-free guidance).

The sha256 of ``manifest.json`` is the bundle's model version: the clip cache keys clips on
it, so a different bundle never reuses another's clips.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic_writes import is_taken, written_in_place
from engine.hashing import sha256_file

from . import architectures as arch

FORMAT = "art2mus-model-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CONDITIONING = "conditioning.safetensors"
COMPONENTS = ("unet", "vae", "vocoder", "language_model", "scheduler", "aligner", "encoder")
CONDITIONING_KEYS = (
    "prompt_embeds",
    "attention_mask",
    "negative_prompt_embeds",
    "negative_attention_mask",
    "negative_generated_prompt_embeds",
)


class BundleError(ValueError):
    """A bundle that cannot be used; the message names the folder, the file and the problem."""


@dataclass
class ModelBundle:
    """A loaded bundle: the runtime components, the stored conditioning and the manifest."""

    path: Path
    manifest: dict[str, Any]
    version: str  # sha256 of manifest.json
    unet: Any
    vae: Any
    vocoder: Any
    language_model: Any
    scheduler_config: dict[str, Any]
    aligner: Any
    encoder: Any
    conditioning: dict[str, Any] = field(default_factory=dict)

    @property
    def encoder_kind(self) -> str:
        return self.manifest["components"]["encoder"]["kind"]


# --------------------------------------------------------------------------- hashing


def _bundle_files(folder: Path) -> list[str]:
    """Every file of the bundle except the manifest, as sorted POSIX paths."""
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST
    )


def model_version(folder: str | os.PathLike) -> str:
    """The bundle's model version: sha256 of its manifest file."""
    return sha256_file(Path(folder) / MANIFEST)


# --------------------------------------------------------------------------- manifest


def _library_versions() -> dict[str, str]:
    import diffusers
    import safetensors
    import torch
    import transformers

    return {
        "torch": torch.__version__.split("+")[0],
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
    }


def _read_json(path: Path, folder: Path) -> dict:
    rel = path.relative_to(folder).as_posix()
    if not path.is_file():
        raise BundleError(f"{folder}: {rel} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{folder}: {rel} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{folder}: {rel} must hold a JSON object")
    return data


def read_manifest(folder: str | os.PathLike) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"{folder}: model bundle folder not found")
    if not (folder / MANIFEST).is_file():
        raise BundleError(
            f"{folder}: {MANIFEST} is missing; this is not an Art2Mus model bundle "
            "(make one with `art2mus models build`)"
        )
    manifest = _read_json(folder / MANIFEST, folder)
    if manifest.get("format") != FORMAT:
        raise BundleError(
            f"{folder}: {MANIFEST}: 'format' is {manifest.get('format')!r}; expected {FORMAT!r}"
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{folder}: {MANIFEST}: format_version {manifest.get('format_version')!r} is not supported "
            f"(this program reads version {FORMAT_VERSION}); rebuild the bundle with this version"
        )
    for key in ("files", "components", "conditioning"):
        if not isinstance(manifest.get(key), dict):
            raise BundleError(f"{folder}: {MANIFEST}: '{key}' is missing or not an object")
    return manifest


def verify_files(folder: Path, manifest: dict) -> list[str]:
    """Problems with the bundle's files against the manifest, each naming the file."""
    problems = []
    listed: dict[str, str] = manifest["files"]
    for rel, expected in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: missing (listed in {MANIFEST})")
        elif sha256_file(path) != expected:
            problems.append(
                f"{rel}: sha256 mismatch (the file is corrupt or was changed after the bundle was built)"
            )
    for rel in _bundle_files(folder):
        if rel not in listed:
            problems.append(f"{rel}: not listed in {MANIFEST} (added or renamed after the bundle was built)")
    for name in COMPONENTS:
        if not any(rel.startswith(name + "/") for rel in listed):
            problems.append(f"{name}/: component missing from {MANIFEST}")
    if CONDITIONING not in listed:
        problems.append(f"{CONDITIONING}: missing from {MANIFEST}")
    return problems


def write_manifest(folder: Path, info: dict) -> str:
    """Hash every file, write manifest.json, and return the model version."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **info,
        "libraries": _library_versions(),
        "files": {rel: sha256_file(folder / rel) for rel in _bundle_files(folder)},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return model_version(folder)


# --------------------------------------------------------------------------- consistency


def _shape_problems(configs: dict[str, dict], conditioning_shapes: dict[str, tuple]) -> list[str]:
    """Check that the components fit together and the stored conditioning fits the UNet."""
    problems = []
    unet, vae, vocoder, lm, aligner = (
        configs["unet"],
        configs["vae"],
        configs["vocoder"],
        configs["language_model"],
        configs["aligner"],
    )
    encoder_dim = configs["encoder_dim"]
    streams: Any = unet.get("cross_attention_dim")  # unchecked JSON: the try below checks its form
    try:
        lm_width = {dims[1] for dims in streams}
        t5_width = {dims[2] for dims in streams}
    except (TypeError, IndexError):
        return [f"unet/config.json: cross_attention_dim {streams!r} is not AudioLDM 2's two-stream form"]
    if len(lm_width) != 1 or len(t5_width) != 1:
        return [f"unet/config.json: cross_attention_dim {streams!r} has inconsistent stream widths"]
    (lm_width,), (t5_width,) = lm_width, t5_width
    if lm.get("n_embd") != lm_width:
        problems.append(
            f"language_model/config.json: n_embd {lm.get('n_embd')} does not match the UNet's "
            f"first cross-attention stream ({lm_width})"
        )
    if aligner.get("token_dim") != lm.get("n_embd"):
        problems.append(
            f"aligner/config.json: token_dim {aligner.get('token_dim')} does not match the "
            f"language model's n_embd ({lm.get('n_embd')})"
        )
    if aligner.get("input_dim") != encoder_dim:
        problems.append(
            f"aligner/config.json: input_dim {aligner.get('input_dim')} does not match the "
            f"encoder's embedding size ({encoder_dim})"
        )
    if unet.get("in_channels") != vae.get("latent_channels"):
        problems.append(
            f"unet/config.json: in_channels {unet.get('in_channels')} does not match "
            f"vae/config.json latent_channels ({vae.get('latent_channels')})"
        )
    vae_scale = 2 ** (len(vae.get("block_out_channels", [])) - 1)
    if vocoder.get("model_in_dim", 0) % vae_scale:
        problems.append(
            f"vocoder/config.json: model_in_dim {vocoder.get('model_in_dim')} is not divisible by "
            f"the VAE's downsampling factor ({vae_scale})"
        )

    expected_last = {
        "prompt_embeds": t5_width,
        "negative_prompt_embeds": t5_width,
        "negative_generated_prompt_embeds": lm_width,
    }
    for key in CONDITIONING_KEYS:
        if key not in conditioning_shapes:
            problems.append(f"{CONDITIONING}: tensor '{key}' is missing")
    if problems:
        return problems
    shapes = conditioning_shapes
    length = shapes["prompt_embeds"][1] if len(shapes["prompt_embeds"]) == 3 else None
    for key, width in expected_last.items():
        shape = tuple(shapes[key])
        want_len = arch.LOA_TOKENS if key == "negative_generated_prompt_embeds" else length
        if len(shape) != 3 or shape[0] != 1 or shape[2] != width or shape[1] != want_len:
            problems.append(
                f"{CONDITIONING}: '{key}' has shape {shape}; expected (1, {want_len}, {width}) "
                "to fit the UNet's cross-attention"
            )
    for key in ("attention_mask", "negative_attention_mask"):
        if tuple(shapes[key]) != (1, length):
            problems.append(f"{CONDITIONING}: '{key}' has shape {tuple(shapes[key])}; expected (1, {length})")
    return problems


def _component_configs(folder: Path, manifest: dict) -> dict[str, dict]:
    files = {
        "unet": "unet/config.json",
        "vae": "vae/config.json",
        "vocoder": "vocoder/config.json",
        "language_model": "language_model/config.json",
        "aligner": "aligner/config.json",
    }
    configs = {name: _read_json(folder / rel, folder) for name, rel in files.items()}
    encoder = manifest["components"].get("encoder", {})
    configs["encoder_dim"] = encoder.get("dim")
    return configs


def _conditioning_shapes(folder: Path) -> dict[str, tuple]:
    from safetensors import safe_open

    path = folder / CONDITIONING
    try:
        with safe_open(str(path), framework="pt") as fh:
            # safe_open has keys() but cannot be iterated itself.
            return {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        raise BundleError(f"{folder}: {CONDITIONING} cannot be read: {exc}") from None


def check_bundle(folder: str | os.PathLike, *, load: bool = True) -> list[str]:
    """Everything wrong with a bundle, each naming the file (empty when it is usable).

    With ``load`` the components are also loaded on the CPU, which catches weights whose
    shapes do not fit their configs.
    """
    folder = Path(folder)
    try:
        manifest = read_manifest(folder)
    except BundleError as exc:
        return [str(exc)]
    problems = verify_files(folder, manifest)
    if problems:
        return problems
    try:
        configs = _component_configs(folder, manifest)
        shapes = _conditioning_shapes(folder)
    except BundleError as exc:
        return [str(exc)]
    problems = _shape_problems(configs, shapes)
    declared = {k: tuple(v) for k, v in manifest["conditioning"].get("shapes", {}).items()}
    if not problems and declared != shapes:
        problems.append(f"{MANIFEST}: conditioning shapes {declared} do not match {CONDITIONING} ({shapes})")
    if problems or not load:
        return problems
    try:
        load_bundle(folder, verify=False)
    except BundleError as exc:
        return [str(exc)]
    return []


# --------------------------------------------------------------------------- loading


def _load(folder: Path, name: str, loader, *args, **kwargs):
    try:
        return loader(*args, **kwargs)
    except BundleError:
        raise
    except Exception as exc:  # from_pretrained raises many kinds; name the component
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{folder}: {name}/ cannot be loaded: {first}") from exc


def load_bundle(
    folder: str | os.PathLike, *, device: str = "cpu", dtype=None, verify: bool = True
) -> ModelBundle:
    """Load a bundle, refusing it with a :class:`BundleError` that names the file at fault.

    ``verify`` re-hashes every file against the manifest (seconds for a full-size bundle)
    and checks that the components and the stored conditioning fit together.
    """
    import torch
    from diffusers import AutoencoderKL
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel
    from safetensors.torch import load_file
    from transformers import GPT2Model, SpeechT5HifiGan

    from .aligner import ImageAligner
    from .encoders import load_vision_encoder

    folder = Path(folder).expanduser().resolve()
    manifest = read_manifest(folder)
    if verify:
        problems = verify_files(folder, manifest)
        if not problems:
            problems = _shape_problems(_component_configs(folder, manifest), _conditioning_shapes(folder))
        if problems:
            raise BundleError(f"{folder}: refused: " + "; ".join(problems))
    dtype = dtype or torch.float32
    common = {"local_files_only": True}

    def pretrained(cls, name, **extra):
        model = _load(folder, name, cls.from_pretrained, str(folder / name), **common, **extra)
        return model.to(device=device).eval()

    # The UNet runs in the compute dtype (fp16/bf16 on a GPU); the small VAE, vocoder, GPT-2
    # and aligner stay in fp32, where their cost is negligible and their precision is kept.
    scheduler_config = _read_json(folder / "scheduler" / "scheduler_config.json", folder)
    conditioning = _load(folder, CONDITIONING.split(".")[0], load_file, str(folder / CONDITIONING))
    bundle = ModelBundle(
        path=folder,
        manifest=manifest,
        version=model_version(folder),
        unet=pretrained(AudioLDM2UNet2DConditionModel, "unet", torch_dtype=dtype),
        vae=pretrained(AutoencoderKL, "vae"),
        vocoder=pretrained(SpeechT5HifiGan, "vocoder"),
        language_model=pretrained(GPT2Model, "language_model"),  # the LoA loop needs no LM head
        scheduler_config=scheduler_config,
        aligner=pretrained(ImageAligner, "aligner"),
        encoder=_load(folder, "encoder", load_vision_encoder, folder / "encoder").to(device).eval(),
        conditioning={k: v.to(device) for k, v in conditioning.items()},
    )
    for module in (
        bundle.unet,
        bundle.vae,
        bundle.vocoder,
        bundle.language_model,
        bundle.aligner,
        bundle.encoder,
    ):
        module.requires_grad_(False)
    return bundle


# --------------------------------------------------------------------------- building


def negative_prompt_for(recipe: str) -> str:
    """The negative prompt of the pipeline an aligner was trained with."""
    from .aligner import ConditioningRecipe

    if ConditioningRecipe(recipe) is ConditioningRecipe.ART2MUS_2024:
        return arch.AUTHORS_NEGATIVE_PROMPT
    return arch.NEGATIVE_PROMPT


def compute_conditioning(pipe, device: str = "cpu", recipe: str = "audioldm2") -> dict:
    """Run AudioLDM 2's prompt encoding once for the fixed prompt and the negative prompt.

    ``encode_prompt`` with classifier-free guidance returns each tensor as
    ``cat([negative, positive])``; row 0 is the negative branch, row 1 the positive one.
    The pipeline's own GPT-2 loop works only on ``GPT2LMHeadModel`` with transformers 5,
    while AudioLDM 2 snapshots store a ``GPT2Model``; ``generate_loa`` is the same loop
    (tests/test_diffusion_conditioning.py proves it equal) and takes either.

    ``recipe`` "art2mus-2024" is the authors' pipeline (justivanr/art2mus_), which differs in
    the unguided branch's LoA only: it encodes the negative prompt for CLAP + FLAN-T5 → GPT-2
    *while the image stands in for the prompt*, so FLAN-T5's input is padded and truncated to
    the image stream's length, one token (``max_length = input_embeds.shape[1]`` with
    ``input_embeds`` the (B, 1, 1024) image embedding). diffusers' ``encode_prompt`` does the
    same when it is handed a one-position ``prompt_embeds``, so that is what runs here. Both
    FLAN-T5 streams of the UNet (prompt, and negative padded to the prompt's length) are the
    same in both pipelines.
    """
    import torch

    from .aligner import ConditioningRecipe
    from .conditioning import generate_loa

    def generate_language_model(inputs_embeds, max_new_tokens=None, attention_mask=None, **_):
        return generate_loa(
            pipe.language_model,
            inputs_embeds,
            max_new_tokens or arch.LOA_TOKENS,
            attention_mask=attention_mask,
        )

    authors = ConditioningRecipe(recipe) is ConditioningRecipe.ART2MUS_2024
    negative_prompt = negative_prompt_for(recipe)
    pipe.generate_language_model = generate_language_model  # this instance only
    with torch.no_grad():
        prompt_embeds, attention_mask, generated = pipe.encode_prompt(
            arch.PROMPT,
            device,
            num_waveforms_per_prompt=1,
            do_classifier_free_guidance=True,
            negative_prompt=negative_prompt,
        )
        negative_loa = generated[:1]
        if authors:
            one_position = prompt_embeds[1:, :1]  # only its length (1) matters: it is never encoded
            _, _, generated = pipe.encode_prompt(
                arch.PROMPT,
                device,
                num_waveforms_per_prompt=1,
                do_classifier_free_guidance=True,
                negative_prompt=negative_prompt,
                prompt_embeds=one_position,
                attention_mask=attention_mask[1:, :1],
                generated_prompt_embeds=generated[1:],
            )
            negative_loa = generated[:1]
    return {
        "prompt_embeds": prompt_embeds[1:].float().contiguous().cpu(),
        "attention_mask": attention_mask[1:].long().contiguous().cpu(),
        "negative_prompt_embeds": prompt_embeds[:1].float().contiguous().cpu(),
        "negative_attention_mask": attention_mask[:1].long().contiguous().cpu(),
        "negative_generated_prompt_embeds": negative_loa.float().contiguous().cpu(),
    }


def _refuse_existing(out: Path) -> None:
    if is_taken(out):
        raise BundleError(f"{out}: already exists and is not empty; choose a new folder")


def _source_name(folder: Path) -> str:
    index = folder / "model_index.json"
    if index.is_file():
        try:
            name = json.loads(index.read_text()).get("_name_or_path")
            if name:
                return str(name)
        except (OSError, json.JSONDecodeError):
            pass
    return folder.name


def build_bundle(
    out: str | os.PathLike,
    *,
    audioldm2: str | os.PathLike,
    encoder: str | os.PathLike,
    aligner: str | os.PathLike,
    progress=None,
) -> str:
    """Build a bundle from local folders; returns its model version.

    The bundle is written into a temporary folder beside ``out`` and renamed at the end, so
    an interrupted build never leaves a half-written bundle behind. The input folders are
    only read.
    """
    from diffusers import AudioLDM2Pipeline, DDIMScheduler
    from safetensors.torch import save_file

    from .aligner import ImageAligner
    from .encoders import load_vision_encoder

    say = progress or (lambda message: None)
    out = Path(out).expanduser().resolve()
    sources = {
        name: Path(p).expanduser().resolve()
        for name, p in (("audioldm2", audioldm2), ("encoder", encoder), ("aligner", aligner))
    }
    for name, path in sources.items():
        if not path.is_dir():
            raise BundleError(f"{path}: --{name} folder not found")
    _refuse_existing(out)

    say(f"loading AudioLDM 2 from {sources['audioldm2']}")
    pipe = _load(
        sources["audioldm2"],
        "audioldm2",
        AudioLDM2Pipeline.from_pretrained,
        str(sources["audioldm2"]),
        local_files_only=True,
    )
    say("loading the vision encoder and the aligner")
    vision = _load(sources["encoder"], "encoder", load_vision_encoder, sources["encoder"])
    image_aligner = _load(
        sources["aligner"],
        "aligner",
        ImageAligner.from_pretrained,
        str(sources["aligner"]),
        local_files_only=True,
    )
    recipe = image_aligner.config.conditioning
    negative_prompt = negative_prompt_for(recipe)
    say(f"encoding the fixed prompt and the negative prompt (FLAN-T5, CLAP, GPT-2; {recipe} pipeline)")
    conditioning = compute_conditioning(pipe, recipe=recipe)

    with written_in_place(out) as work:
        say(f"writing the bundle to {out}")
        for name in ("unet", "vae", "vocoder", "language_model"):
            getattr(pipe, name).save_pretrained(work / name, safe_serialization=True)
        DDIMScheduler.from_config(pipe.scheduler.config).save_pretrained(work / "scheduler")
        image_aligner.save_pretrained(work / "aligner", safe_serialization=True)
        shutil.copytree(sources["encoder"], work / "encoder")
        save_file(
            conditioning,
            str(work / CONDITIONING),
            metadata={"prompt": arch.PROMPT, "negative_prompt": negative_prompt, "recipe": recipe},
        )
        info = {
            "components": {
                "unet": {"class": type(pipe.unet).__name__, "source": _source_name(sources["audioldm2"])},
                "vae": {"class": type(pipe.vae).__name__},
                "vocoder": {
                    "class": type(pipe.vocoder).__name__,
                    "sampling_rate": pipe.vocoder.config.sampling_rate,
                },
                "language_model": {"class": type(pipe.language_model).__name__},
                "scheduler": {"class": "DDIMScheduler"},
                "aligner": {
                    "class": type(image_aligner).__name__,
                    "num_tokens": image_aligner.config.num_tokens,
                    "architecture": image_aligner.config.architecture,
                    "source": sources["aligner"].name,
                },
                "encoder": {"kind": vision.kind, "dim": vision.dim, "source": sources["encoder"].name},
            },
            "conditioning": {
                "prompt": arch.PROMPT,
                "negative_prompt": negative_prompt,
                "recipe": recipe,
                "shapes": {k: list(v.shape) for k, v in sorted(conditioning.items())},
            },
        }
        problems = _shape_problems(
            _component_configs(work, {"components": info["components"]}),
            {k: tuple(v.shape) for k, v in conditioning.items()},
        )
        if problems:
            raise BundleError("the inputs do not fit together: " + "; ".join(problems))
        version = write_manifest(work, info)
        _refuse_existing(out)  # again: made by someone else while this one was written?
    return version


def make_tiny_bundle(out: str | os.PathLike, *, encoder_kind: str = "clip", seed: int = 0) -> str:
    """Build a tiny random bundle (see tiny_audioldm2.py) through the real build path."""
    import torch

    from .aligner import ImageAligner
    from .encoders import load_vision_encoder, make_tiny_encoder
    from .tiny_audioldm2 import save_tiny_snapshot

    if encoder_kind not in ("clip", "imagebind"):
        raise BundleError(f"encoder kind {encoder_kind!r} is not supported; use 'clip' or 'imagebind'")
    with tempfile.TemporaryDirectory(prefix="art2mus-tiny-") as tmp_name:
        tmp = Path(tmp_name)
        save_tiny_snapshot(tmp / "audioldm2", seed=seed)
        make_tiny_encoder(encoder_kind, tmp / "encoder", seed=seed)
        vision = load_vision_encoder(tmp / "encoder")
        torch.manual_seed(seed + 2)
        ImageAligner(
            input_dim=vision.dim,
            embed_dim=1024,
            num_tokens=16 if encoder_kind == "imagebind" else 6,
            token_dim=arch.TINY.lm_dim,
        ).save_pretrained(tmp / "aligner")
        return build_bundle(
            out, audioldm2=tmp / "audioldm2", encoder=tmp / "encoder", aligner=tmp / "aligner"
        )
