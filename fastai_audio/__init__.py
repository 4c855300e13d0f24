"""fastai_audio: train audio classifiers the fastai way, with spectrograms computed per batch on the GPU."""

__version__ = "0.1.0"

import warnings

with warnings.catch_warnings():
    # fastai 2.8's layers module calls torch.jit.script at import time, which torch >= 2.10 deprecates; the
    # warning is about fastai's code, not the user's, so it is silenced for this one import.
    warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
    import fastai.torch_basics  # noqa: F401

from .core import TensorAudio, TensorSpectrogram  # noqa: E402
from .errors import AudioError, AudioFileError, ParameterError  # noqa: E402
from .io import AudioInfo, audio_info, load_audio, resample, save_audio  # noqa: E402

__all__ = [
    "AudioError",
    "AudioFileError",
    "AudioInfo",
    "ParameterError",
    "TensorAudio",
    "TensorSpectrogram",
    "__version__",
    "audio_info",
    "load_audio",
    "resample",
    "save_audio",
]
