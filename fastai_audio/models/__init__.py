"""Networks made for audio, beside the ImageNet CNNs ``audio_learner`` adapts: PANNs' AudioSet CNNs (``panns``) and
MusiCNN with the ``musicnn`` package's MagnaTagATune and Million Song Dataset weights (``musicnn``, read by
``tf_checkpoint`` without TensorFlow).

Pure torch, no fastai: ``audio_learner(dls, "cnn14", weights=...)`` builds the PANNs; ``create_panns`` and
``MusiCNN`` alone give the networks.
"""

from .musicnn import (
    MUSICNN_CHECKPOINTS,
    MusiCNN,
    MusicVGG,
    load_musicnn_weights,
    musicnn_checkpoint,
    musicnn_splitter,
    musicnn_tags,
)
from .panns import (
    PANNS_ARCHS,
    PANNS_CHECKPOINTS,
    Cnn6,
    Cnn10,
    Cnn14,
    MobileNetV1,
    create_panns,
    find_panns_checkpoint,
    load_panns_weights,
    panns_splitter,
)

__all__ = [
    "MUSICNN_CHECKPOINTS",
    "MusiCNN",
    "MusicVGG",
    "load_musicnn_weights",
    "musicnn_checkpoint",
    "musicnn_splitter",
    "musicnn_tags",
    "PANNS_ARCHS",
    "PANNS_CHECKPOINTS",
    "Cnn6",
    "Cnn10",
    "Cnn14",
    "MobileNetV1",
    "create_panns",
    "find_panns_checkpoint",
    "load_panns_weights",
    "panns_splitter",
]
