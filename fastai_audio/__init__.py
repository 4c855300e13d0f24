"""fastai_audio: train audio classifiers the fastai way, with spectrograms computed per batch on the GPU.

The names below are imported on first use, so that ``import fastai_audio`` (and the ``fastai-audio`` command's help
and usage errors) costs no torch or fastai import.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "AudioError": ".errors",
    "AudioFileError": ".errors",
    "ParameterError": ".errors",
    "AudioConfig": ".audio_config",
    "AudioInfo": ".files",
    "decode_audio": ".decode",
    "audio_info": ".files",
    "load_audio": ".io",
    "resample": ".io",
    "save_audio": ".io",
    "TensorAudio": ".core",
    "TensorSpectrogram": ".core",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fastai_audio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
