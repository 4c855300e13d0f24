"""``from fastai_audio.all import *`` for notebooks (the fastai convention): fastai's training API plus ours.

The package itself imports by name; only this module star-exports.
"""

from fastai.basics import *  # noqa: F403
from fastai.callback.all import *  # noqa: F403
from fastai.interpret import *  # noqa: F403
from fastai.vision.models import resnet18, resnet34, resnet50  # noqa: F401
from torchvision import models  # noqa: F401

from . import TensorAudio, TensorSpectrogram, audio_info, load_audio, save_audio  # noqa: F401
from .data import *  # noqa: F403
from .datasets import read_nsynth, synth_nsynth  # noqa: F401
from .errors import *  # noqa: F403
from .functional import *  # noqa: F403
from .inference import *  # noqa: F403
from .interpret import *  # noqa: F403
from .learner import *  # noqa: F403
from .transforms import *  # noqa: F403
