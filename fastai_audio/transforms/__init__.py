"""fastai Transforms for audio. Item transforms run per clip on CPU workers."""

from .item import CropPad, DownmixMono, OpenAudio, Resample

__all__ = ["OpenAudio", "DownmixMono", "Resample", "CropPad"]
