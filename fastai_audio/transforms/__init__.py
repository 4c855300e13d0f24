"""fastai Transforms for audio. Item transforms run per clip on CPU workers."""

from .item import AudioTransform, CropPad, DownmixMono, OpenAudio, Resample

__all__ = ["AudioTransform", "OpenAudio", "DownmixMono", "Resample", "CropPad"]
