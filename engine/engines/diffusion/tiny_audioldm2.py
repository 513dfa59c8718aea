"""A tiny random AudioLDM 2 in diffusers' format, with all eleven pipeline components.

No weights can be downloaded where this project is tested, so `art2mus models make-tiny`,
the tests and the CPU benchmark use this: a real :class:`diffusers.AudioLDM2Pipeline` whose
components have the real classes and structure at a tiny width (see ``architectures.TINY``).
Its text side (CLAP, FLAN-T5, projection model, tokenizers built from a small word list) runs
the real prompt encoding, so a tiny bundle's stored conditioning is derived exactly the way a
real one is.
"""

from __future__ import annotations

from pathlib import Path

from . import architectures as arch

# A word list that covers the two fixed prompts (and a little more), for the tiny tokenizers.
_WORDS = [
    "music",
    "representing",
    "the",
    "content",
    "of",
    "this",
    "artwork",
    "low",
    "quality",
    "a",
    "an",
    "and",
    "with",
    "sound",
    "painting",
    "calm",
    "bright",
    "dark",
    "night",
    "day",
    "colour",
    "color",
    "light",
]


def _tokenizers():
    from transformers import RobertaTokenizer, T5Tokenizer

    # Byte-level BPE (RoBERTa, CLAP's tokenizer) without merges: one token per letter.
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for char in "ĠabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        vocab[char] = len(vocab)
    roberta = RobertaTokenizer(vocab=vocab, merges=[], model_max_length=64)
    # Unigram (T5): pad, eos, unk first, then "▁word" pieces.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for word in _WORDS:
        for form in ("▁" + word, "▁" + word.capitalize()):
            if form not in dict(pieces):
                pieces.append((form, -1.0))
    t5 = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=32)
    return roberta, t5, len(vocab), len(pieces)


def make_tiny_pipeline(seed: int = 0):
    """A tiny random :class:`diffusers.AudioLDM2Pipeline` on the CPU, in fp32."""
    import torch
    from diffusers import AudioLDM2Pipeline
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
        T5Config,
        T5EncoderModel,
    )

    s = arch.TINY
    models = arch.build_models(s, seed=seed)
    roberta, t5_tokenizer, roberta_vocab, t5_vocab = _tokenizers()
    torch.manual_seed(seed + 1)
    text_config = ClapTextConfig(
        vocab_size=roberta_vocab,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=80,
        projection_dim=s.clap_dim,
    )
    audio_config = ClapAudioConfig(
        spec_size=64,
        window_size=4,
        num_mel_bins=64,
        hidden_size=16,
        patch_stride=2,
        patch_embed_input_channels=4,
        depths=[2, 2],
        num_attention_heads=[2, 2],
        num_hidden_layers=1,
        projection_dim=s.clap_dim,
    )
    clap = ClapModel(
        ClapConfig(
            text_config=text_config.to_dict(),
            audio_config=audio_config.to_dict(),
            projection_dim=s.clap_dim,
        )
    ).eval()
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=t5_vocab,
            d_model=s.t5_dim,
            d_ff=32,
            d_kv=8,
            num_layers=1,
            num_heads=2,
            # A PreTrainedConfig key, taken at run time; T5Config's typed fields list only its own.
            decoder_start_token_id=0,  # type: ignore[call-arg]
        )
    ).eval()
    projection = AudioLDM2ProjectionModel(
        text_encoder_dim=s.clap_dim, text_encoder_1_dim=s.t5_dim, langauge_model_dim=s.lm_dim
    ).eval()
    feature_extractor = ClapFeatureExtractor(feature_size=64, sampling_rate=48000)
    return AudioLDM2Pipeline(
        vae=models["vae"],
        text_encoder=clap,
        text_encoder_2=t5,
        projection_model=projection,
        language_model=models["language_model"],
        tokenizer=roberta,
        tokenizer_2=t5_tokenizer,
        feature_extractor=feature_extractor,
        unet=models["unet"],
        scheduler=models["scheduler"],
        vocoder=models["vocoder"],
    )


def save_tiny_snapshot(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny AudioLDM 2 snapshot folder, laid out like `cvssp/audioldm2-music`.

    Like the hub snapshots, its language model is saved as a ``GPT2Model`` (no LM head),
    which diffusers' own GPT-2 loop cannot run with transformers 5 -- the case the bundle
    builder has to handle.
    """
    from transformers import GPT2Model

    folder = Path(folder)
    pipe = make_tiny_pipeline(seed)
    base = GPT2Model(pipe.language_model.config).eval()
    base.load_state_dict(pipe.language_model.transformer.state_dict())
    pipe.register_modules(language_model=base)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
