"""Deprecated name of :mod:`fastai_audio.runtime`, the torch-free runtime of exported models (``OnnxClassifier``).

It was renamed so that it is not confused with :mod:`fastai_audio.server`, the HTTP server. This module re-exports the
runtime's public names and warns; it goes in the next release.
"""

import warnings

from .runtime import *  # noqa: F403
from .runtime import __all__  # noqa: F401

warnings.warn(
    "fastai_audio.serve is now fastai_audio.runtime (the ONNX runtime; fastai_audio.server is the HTTP server): "
    "import from fastai_audio.runtime; the old name goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
