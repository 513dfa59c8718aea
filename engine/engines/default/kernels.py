"""scipy's compiled FFT and IIR-filter kernels, without importing scipy.fft or scipy.signal.

Why: ``import scipy.signal`` costs about 1 s of CPU (it pulls in scipy.stats, interpolate,
optimize, sparse, ...) and ``import scipy.fft`` about 0.25 s (scipy.special), against some
0.25 s for composing and rendering a whole 30-s clip — for `art2mus generate` on a few
paintings the imports were the largest single cost. The engine needs only two kernels from
them: pocketfft's real FFTs (``scipy.fft.rfft``/``irfft``) and the biquad cascade
(``scipy.signal.sosfilt``, piece by piece). This module loads those two extension modules from scipy's
folder directly (only the light top-level ``scipy`` package is imported) and calls them
exactly as scipy's public functions do, so the results are bit-identical to
``scipy.fft.rfft``/``irfft`` and ``scipy.signal.sosfilt`` (tests/test_default_engine_parts.py
checks that). If the layout of a scipy release ever differs, it falls back to the public
functions (slower to import, same numbers).

Private scipy modules used: ``scipy.fft._pocketfft.pypocketfft`` (``r2c``, ``c2r``) and
``scipy.signal._sosfilt`` (``_sosfilt``), as of scipy 1.17.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


def _load_extension(name: str) -> ModuleType | None:
    """The compiled module ``name`` (a submodule of scipy), loaded without its parent
    packages' ``__init__``; None when it cannot be found or loaded."""
    if name in sys.modules:
        return sys.modules[name]
    try:
        import scipy

        folder = Path(scipy.__file__).parent.joinpath(*name.split(".")[1:-1])
        stem = name.rsplit(".", 1)[1]
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = folder / f"{stem}{suffix}"
            if path.is_file():
                loader = importlib.machinery.ExtensionFileLoader(name, str(path))
                spec = importlib.util.spec_from_file_location(name, path, loader=loader)
                if spec is None:
                    return None
                module = importlib.util.module_from_spec(spec)
                loader.exec_module(module)
                sys.modules[name] = module
                return module
    except Exception:  # any failure: use the public function instead
        return None
    return None


@lru_cache(maxsize=1)
def _pocketfft() -> Any:
    module = _load_extension("scipy.fft._pocketfft.pypocketfft")
    if module is None or not all(hasattr(module, f) for f in ("r2c", "c2r")):
        return None
    return module


@lru_cache(maxsize=1)
def _sosfilt_kernel() -> Any:
    module = _load_extension("scipy.signal._sosfilt")
    return getattr(module, "_sosfilt", None) if module is not None else None


def rfft(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``scipy.fft.rfft(x, axis=axis)`` for a real float32/float64 array."""
    pfft = _pocketfft()
    if pfft is None:
        import scipy.fft

        return scipy.fft.rfft(x, axis=axis)
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.dtype == np.float16:
        raise TypeError(f"rfft needs float32 or float64, not {x.dtype}")
    # As scipy.fft: native byte order, aligned; norm "backward" (0), one worker.
    tmp = np.array(x, dtype=x.dtype.newbyteorder("="), copy=None if x.flags["ALIGNED"] else True)
    return pfft.r2c(tmp, (axis,), True, 0, None, 1)


def irfft(x: np.ndarray, n: int, axis: int = -1) -> np.ndarray:
    """``scipy.fft.irfft(x, n=n, axis=axis)`` for a complex64/complex128 array."""
    pfft = _pocketfft()
    if pfft is None:
        import scipy.fft

        return scipy.fft.irfft(x, n=n, axis=axis)
    x = np.asarray(x)
    if x.dtype.kind != "c":
        raise TypeError(f"irfft needs a complex array, not {x.dtype}")
    tmp = np.array(x, dtype=x.dtype.newbyteorder("="), copy=None if x.flags["ALIGNED"] else True)
    # As scipy.fft: the input cut or zero-padded to n//2+1 along the axis; norm "backward"
    # (2 for the inverse), one worker.
    half = n // 2 + 1
    if tmp.shape[axis] >= half:
        index = [slice(None)] * tmp.ndim
        index[axis] = slice(0, half)
        tmp = tmp[tuple(index)]
    else:
        shape = list(tmp.shape)
        shape[axis] = half
        padded = np.zeros(shape, tmp.dtype)
        index = [slice(None)] * tmp.ndim
        index[axis] = slice(0, tmp.shape[axis])
        padded[tuple(index)] = tmp
        tmp = padded
    return pfft.c2r(tmp, (axis,), n, False, 2, None, 1)


def sosfilt_rows_in_place(sos: np.ndarray, y: np.ndarray, zi: np.ndarray) -> None:
    """Filter the rows of ``y`` (2-D, rows contiguous, the dtype of ``sos``) in place, starting
    from and updating the state ``zi`` (rows, sections, 2): calling it on consecutive chunks of
    a signal gives the same numbers as ``scipy.signal.sosfilt`` over the whole signal."""
    kernel = _sosfilt_kernel()
    if kernel is None:
        from scipy import signal

        out, state = signal.sosfilt(sos, y, axis=1, zi=zi.transpose(1, 0, 2))
        y[...] = out
        zi[...] = state.transpose(1, 0, 2)
        return
    kernel(sos, y, zi)
