"""fastai_audio: train audio classifiers the fastai way, with spectrograms computed per batch on the GPU."""

__version__ = "0.1.0"

from .core import TensorAudio
from .errors import AudioError, AudioFileError, ParameterError
from .io import AudioInfo, audio_info, load_audio, resample, save_audio

__all__ = [
    "AudioError",
    "AudioFileError",
    "AudioInfo",
    "ParameterError",
    "TensorAudio",
    "__version__",
    "audio_info",
    "load_audio",
    "resample",
    "save_audio",
]
