"""ImageBind's audio tower in plain torch: key layout, attention, preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.engines.diffusion.imagebind_audio import (
    ImageBindAudio,
    ImageBindAudioConfig,
    _BiasKVAttention,
    audio_clips,
    clip_starts,
    kaldi_fbank,
)


def test_huge_key_layout_is_imagebinds():
    with torch.device("meta"):
        state = ImageBindAudio().state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    # a one-layer stem is bare in ImageBind's PatchEmbedGeneric (found by benchmarks/imagebind_parity.py)
    assert shapes["modality_preprocessors.audio.rgbt_stem.proj.weight"] == (768, 1, 16, 16)
    assert shapes["modality_preprocessors.audio.pos_embedding_helper.pos_embed"] == (1, 229, 768)
    assert shapes["modality_trunks.audio.blocks.11.attn.bias_k"] == (1, 1, 768)
    assert shapes["modality_trunks.audio.blocks.0.attn.in_proj_weight"] == (2304, 768)
    assert shapes["modality_heads.audio.2.weight"] == (1024, 768)
    assert shapes["modality_postprocessors.audio.1.log_logit_scale"] == ()
    assert "modality_preprocessors.audio.rgbt_stem.norm_layer.weight" in shapes
    assert not any(".pre_transformer_layer." in k for k in shapes)  # no ln_pre for audio
    assert len([k for k in shapes if k.startswith("modality_trunks.audio.blocks.0.")]) == 14


def test_attention_equals_multihead_attention_with_bias_kv():
    g = torch.Generator().manual_seed(0)
    ours = _BiasKVAttention(32, 4)
    ref = torch.nn.MultiheadAttention(32, 4, bias=True, add_bias_kv=True, batch_first=True)
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(generator=g)
        ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 7, 32, generator=g)
    torch.testing.assert_close(ours(x), ref(x, x, x, need_weights=False)[0], rtol=1e-4, atol=1e-4)


def test_tiny_tower_embeds_clips_and_averages():
    c = ImageBindAudioConfig(width=32, layers=2, heads=4, embed_dim=16)
    model = ImageBindAudio(c).init_random(torch.Generator().manual_seed(0)).eval()
    t = np.arange(5 * 16000) / 16000
    clips = audio_clips(np.sin(2 * np.pi * 1000 * t))
    assert tuple(clips.shape) == (3, 1, 128, 204)
    with torch.no_grad():
        one = model(clips)
        many = model(clips[None])
    assert one.shape == (3, 16) and many.shape == (1, 16)
    torch.testing.assert_close(one.norm(dim=1), torch.full((3,), 20.0))  # normalised × logit scale 20
    torch.testing.assert_close(many[0], one.mean(0))


def test_preprocessing_clip_starts_and_fbank():
    assert clip_starts(10.0) == [0.0, 4.0, 8.0] and clip_starts(1.0) == [0.0, 0.0, 0.0]
    t = np.arange(32000) / 16000
    fb = kaldi_fbank(np.sin(2 * np.pi * 1000 * t))
    assert fb.shape == (198, 128)  # 2 s: 1 + (32000 − 400) // 160 frames
    mel = lambda f: 1127 * np.log(1 + f / 700)  # noqa: E731
    centres = mel(20) + (np.arange(128) + 1) * (mel(8000) - mel(20)) / 129
    assert abs(int(fb.mean(0).argmax()) - int(np.abs(centres - mel(1000)).argmin())) <= 1


@pytest.mark.slow  # loads the tiny ImageBind bundle
def test_scorer_ranks_the_engines_candidates_by_image_audio_similarity():
    import diffusion_helpers as helpers
    from PIL import Image

    from engine.engines.diffusion.engine import Art2MusEngine
    from engine.engines.diffusion.imagebind_audio import ImageBindScorer

    engine = Art2MusEngine(helpers.tiny_bundle("imagebind"), steps=2)
    tower = ImageBindAudio(ImageBindAudioConfig(width=32, layers=1, heads=4, embed_dim=1024))
    tower.init_random(torch.Generator().manual_seed(0))
    scorer = ImageBindScorer(engine.pipeline.bundle.encoder, tower)
    engine.scorer = scorer
    image = np.asarray(Image.open(helpers_root() / "content" / "demo" / "the-night-cafe.png").convert("RGB"))
    clips = engine.generate_batch([image] * 3, 5.0, [1, 2, 3])
    scores = [c.score for c in clips]
    assert all(s is not None and -1 <= s <= 1 for s in scores) and len(set(scores)) == 3
    assert engine.params()["scorer"] == "imagebind-similarity"
    with pytest.raises(ValueError, match="ImageBind vision encoder"):
        ImageBindScorer(Art2MusEngine(helpers.tiny_bundle("clip"), steps=2).pipeline.bundle.encoder, tower)


def helpers_root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent
