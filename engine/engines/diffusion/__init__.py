"""The Art2Mus diffusion engine: image encoder → Image Aligner → GPT-2 → AudioLDM 2.

Nothing heavy is imported here: the kiosk imports ``engine`` without torch, and only the
diffusion engine imports the submodules (``aligner``, ``encoders``, ``conditioning``,
``onnx_export``), which import torch themselves.
"""
