"""fastai Transforms for audio: per-clip transforms run on CPU workers, batch transforms on the batch's device."""

from .. import _compat  # noqa: F401  (first: it imports fastai with fastai's import-time warning silenced)

# isort: split
from .augment import (
    AddBackground,
    AddNoise,
    AudioAugment,
    AudioCutMix,
    FrequencyMask,
    PitchShift,
    PolarityInversion,
    RandomEQ,
    RandomGain,
    RandomHighpass,
    RandomLowpass,
    RandomReverb,
    RandomShift,
    TimeMask,
    TimeStretch,
    TimeWarp,
    audio_aug_tfms,
)
from .base import TypedTransform
from .item import AudioTransform, CropPad, DownmixMono, OpenAudio, Resample
from .presets import MEL_PRESETS, MelConfig, get_frequency_batch_transforms, mel_transforms
from .spectral import (
    CQT,
    MFCC,
    AmplitudeToDB,
    AudioFrontEnd,
    Delta,
    LogCompress,
    MelSpectrogram,
    Normalize,  # noqa: F401  (SpecNormalize's old name; left out of __all__, see SpecNormalize)
    SpecNormalize,
    SpectralStep,
    SpectralTransform,
    Spectrogram,
    spectral_steps,
)

__all__ = [
    "AddBackground",
    "AddNoise",
    "AudioAugment",
    "AudioCutMix",
    "FrequencyMask",
    "PitchShift",
    "PolarityInversion",
    "RandomEQ",
    "RandomGain",
    "RandomHighpass",
    "RandomLowpass",
    "RandomReverb",
    "RandomShift",
    "TimeMask",
    "TimeWarp",
    "TimeStretch",
    "audio_aug_tfms",
    "AmplitudeToDB",
    "AudioFrontEnd",
    "AudioTransform",
    "CQT",
    "CropPad",
    "Delta",
    "DownmixMono",
    "LogCompress",
    "MEL_PRESETS",
    "MFCC",
    "MelConfig",
    "MelSpectrogram",
    "SpecNormalize",
    "OpenAudio",
    "Resample",
    "Spectrogram",
    "SpectralStep",
    "SpectralTransform",
    "TypedTransform",
    "get_frequency_batch_transforms",
    "mel_transforms",
    "spectral_steps",
]
