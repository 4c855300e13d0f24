"""Networks made for audio, beside the ImageNet CNNs ``audio_learner`` adapts: PANNs' AudioSet CNNs (``panns``).

Pure torch, no fastai: ``audio_learner(dls, "cnn14", weights=...)`` builds them; ``create_panns`` alone gives the
network.
"""

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
