"""Deprecated name of :mod:`fastai_audio.data.audio_dl` (``AudioDL``), renamed so that it is not confused with
:mod:`fastai_audio.data.loaders` (``AudioDataLoaders``). Learners exported before the rename name their loaders'
class here, so this module stays for one release: it re-exports the names and warns.
"""

import warnings

from .audio_dl import *  # noqa: F403
from .audio_dl import AudioDL, ExactPass, __all__  # noqa: F401

warnings.warn(
    "fastai_audio.data.loader is now fastai_audio.data.audio_dl (AudioDL; fastai_audio.data.loaders holds "
    "AudioDataLoaders): import from there; the old name goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
