"""``from fastai_audio.all import *`` for notebooks (the fastai convention): fastai's training API plus ours.

The package itself imports by name; only this module star-exports. fastai's names are never replaced: ours that
would clash are left out here (``fastai_audio.data.RegexLabeller``, which adds clearer errors to fastai's, is
imported by name), and the spectrogram normaliser is ``SpecNormalize``, not fastai's image ``Normalize``
(tests/test_compat.py checks both).
"""

from . import _compat  # noqa: F401  (first: it imports fastai with fastai's import-time warning silenced)

# isort: split
from fastai.basics import *  # noqa: F403
from fastai.callback.all import *  # noqa: F403
from fastai.interpret import *  # noqa: F403
from fastai.vision.models import resnet18, resnet34, resnet50  # noqa: F401
from torchvision import models  # noqa: F401

from . import TensorAudio, TensorSpectrogram, audio_info, load_audio, save_audio  # noqa: F401
from .audio_config import AudioConfig  # noqa: F401
from .data import *  # noqa: F403
from .datasets import read_nsynth, synth_nsynth  # noqa: F401
from .decode import decode_audio  # noqa: F401
from .errors import *  # noqa: F403
from .functional import *  # noqa: F403
from .inference import *  # noqa: F403
from .interpret import *  # noqa: F403
from .learner import *  # noqa: F403
from .transforms import *  # noqa: F403

# isort: split
from fastai.data.transforms import RegexLabeller  # noqa: F401  (fastai's stays: see the docstring)
