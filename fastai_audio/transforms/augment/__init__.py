"""Data augmentation on the batch's device: waveforms before the front-end, spectrograms after it.

Every augmentation here is a batch transform (fastai ``Transform``) with the same rules:

- **training set only**: ``split_idx = 0``, so validation batches, ``get_preds``, ``predict`` and an exported model
  see clean audio;
- **one draw per item**: each clip gets its own parameters, and is augmented at all with probability ``p``;
- **draw, then apply**: ``draw(x)`` returns the parameters as tensors of shape ``(batch, ...)`` (a clip that is
  not augmented gets the identity value, e.g. a gain of 0 dB), plus what ``apply`` needs to know about the batch
  (its rate, its padding); ``apply(x, **params)`` is deterministic and depends on its arguments alone, so a test or
  a notebook can pin the draw; the last draw is kept in ``last_params``;
- **seedable**: with ``seed=None`` draws come from torch's default generator of the batch's device (seeded by
  fastai's ``set_seed``), with an int from the transform's own generator;
- **on the device**: parameters are drawn where the batch is, so nothing is copied between host and device (except
  ``PitchShift`` and ``TimeStretch``, which pick their kernels on the host, and ``AddBackground``, which copies its
  background clips to the device once);
- **picklable**: generators and cached audio are dropped when pickled, so ``learn.export()`` works and stays small.

Waveform augmentations (``order`` 10) run before the spectrogram (``MelSpectrogram`` has order 20); ``TimeWarp``
(65) and the spectrogram masks (70) run after ``SpecNormalize`` (60), where 0 is the mean, so a masked band carries
no information.

One family per module: ``waveform`` (gain, polarity, shift), ``noise`` (noise and background), ``filters``
(low- and high-pass, ``RandomEQ``), ``room`` (``RandomReverb``), ``pitch`` (pitch shift and time stretch),
``specaugment`` (masks and warp), ``mix`` (``AudioCutMix``), ``recipe`` (``audio_aug_tfms``); ``base`` holds
``AudioAugment``. The signal processing itself is in ``fastai_audio.functional`` (``noise``, ``filters``, ``room``,
``stretch``, ``specaugment``, ``crop.shift``).
"""

from .base import AudioAugment
from .filters import RandomEQ, RandomHighpass, RandomLowpass
from .mix import AudioCutMix
from .noise import AddBackground, AddNoise
from .pitch import PitchShift, TimeStretch
from .recipe import audio_aug_tfms
from .room import RandomReverb
from .specaugment import FrequencyMask, TimeMask, TimeWarp
from .waveform import PolarityInversion, RandomGain, RandomShift

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
    "TimeStretch",
    "TimeWarp",
    "audio_aug_tfms",
]
