"""PANNs (Kong et al. 2020, "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern Recognition"):
CNNs trained on AudioSet's 2 million clips, whose published checkpoints start a classifier from audio features
instead of ImageNet's.

The modules here are written for this project, with the reference implementation's tensor names and shapes
(``bn0``, ``conv_block1``..., ``fc1``, ``fc_audioset``; MobileNetV1's ``features``), so a published checkpoint loads
as it is; ``tests/test_panns.py`` checks outputs equal to the reference code's (``panns-inference``) with the same
weights. They take the log-mel the checkpoints were trained on, which this project computes in the loaders
(``mel_transforms("panns")``: 32 kHz, n_fft 1024, hop 320, 64 mels, 50-14,000 Hz, dB with ``ref=1.0``), as a
``(batch, 1, mels, frames)`` batch, and return class scores before the activation (the reference returns AudioSet's
527 sigmoid probabilities; a classifier here gets logits for its loss).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AudioFileError, ParameterError

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

#: Where the AudioSet checkpoints are published (Zenodo record 3987831, CC BY 4.0), by architecture.
PANNS_URL = "https://zenodo.org/record/3987831/files/{}?download=1"
PANNS_CHECKPOINTS = {
    "cnn6": "Cnn6_mAP=0.343.pth",
    "cnn10": "Cnn10_mAP=0.380.pth",
    "cnn14": "Cnn14_mAP=0.431.pth",
    "mobilenetv1": "MobileNetV1_mAP=0.389.pth",
}
#: Tensors of a checkpoint that belong to the reference's built-in front-end (this project computes it in the
#: loaders) or to its augmentation: loading skips them.
FRONT_END_PREFIXES = ("spectrogram_extractor.", "logmel_extractor.", "spec_augmenter.")


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each with BatchNorm and ReLU, then a pooling (Cnn10, Cnn14)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(out_channels), nn.BatchNorm2d(out_channels)

    def forward(self, x, pool_size=(2, 2)):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool_size)


class ConvBlock5x5(nn.Module):
    """One 5x5 convolution with BatchNorm and ReLU, then a pooling (Cnn6)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)

    def forward(self, x, pool_size=(2, 2)):
        return F.avg_pool2d(F.relu(self.bn1(self.conv1(x))), kernel_size=pool_size)


def _init(model: nn.Module) -> None:
    """The reference's initialisation: Xavier-uniform convolutions and linears with zero bias, BatchNorm at 1 / 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _PANN(nn.Module):
    """The common frame: ``bn0`` over the mel bins, a feature extractor (``_features``), pooling over frequency
    (mean) and time (max + mean), dropout, ``fc1`` + ReLU, ``fc_audioset`` (the classifier)."""

    width = 0  # channels the features end with (and fc1's size)
    min_frames = 32  # the shortest input: the features halve the time axis this many times over (2 ** pools)

    def __init__(self, n_out: int = 527, n_mels: int = 64, dropout: float = 0.5, feature_dropout: float = 0.2):
        super().__init__()
        if n_mels < 1 or n_out < 1:
            raise ParameterError(f"n_out and n_mels must be positive, got {n_out}, {n_mels}")
        self.n_mels, self.dropout, self.feature_dropout = n_mels, dropout, feature_dropout
        self.bn0 = nn.BatchNorm2d(n_mels)

    def _heads(self, n_out: int) -> None:
        self.fc1 = nn.Linear(self.width, self.width, bias=True)
        self.fc_audioset = nn.Linear(self.width, n_out, bias=True)
        _init(self)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The clip embedding ``(batch, width)`` (``fc1``'s ReLU output) of a log-mel batch
        ``(batch, 1, mels, frames)``."""
        x = x.as_subclass(torch.Tensor) if type(x) is not torch.Tensor else x
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.n_mels:
            raise ParameterError(
                f"{type(self).__name__} takes log-mel batches (batch, 1, {self.n_mels}, frames), got {tuple(x.shape)};"
                " build the loaders with batch_tfms=mel_transforms('panns')"
            )
        if x.shape[3] < self.min_frames:
            raise ParameterError(
                f"{type(self).__name__} needs at least {self.min_frames} frames ({10 * (self.min_frames - 1)} ms at "
                f"the 'panns' hop of 10 ms), got {x.shape[3]}: lengthen the clips (duration=...)"
            )
        x = x.transpose(2, 3)  # (batch, 1, frames, mels), the reference's layout
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # BatchNorm over the mel bins
        x = self._features(x)
        x = x.mean(dim=3)  # over frequency
        x = x.amax(dim=2) + x.mean(dim=2)  # over time
        x = F.dropout(x, p=self.dropout, training=self.training)
        return F.relu(self.fc1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) ``(batch, n_out)`` of a log-mel batch ``(batch, 1, mels, frames)``; as in the
        reference, the classifier reads ``fc1``'s output with no dropout between them."""
        return self.fc_audioset(self.embed(x))

    def _features(self, x):
        raise NotImplementedError

    def body(self) -> list[nn.Module]:
        """The pretrained feature layers (everything but the classifier ``fc_audioset``)."""
        return [m for name, m in self.named_children() if name != "fc_audioset"]


class _ConvPANN(_PANN):
    block, channels = ConvBlock, ()

    def __init__(self, n_out: int = 527, n_mels: int = 64, dropout: float = 0.5, feature_dropout: float = 0.2):
        super().__init__(n_out, n_mels, dropout, feature_dropout)
        ins = (1, *self.channels[:-1])
        for i, (c_in, c_out) in enumerate(zip(ins, self.channels), 1):
            setattr(self, f"conv_block{i}", self.block(c_in, c_out))
        self.width = self.channels[-1]
        # each block halves both axes, except Cnn14's sixth, which does not pool
        self.pools = [(1, 1) if i == 5 else (2, 2) for i in range(len(self.channels))]
        self.min_frames = 2 ** sum(p == (2, 2) for p in self.pools)
        self._heads(n_out)

    def _features(self, x):
        for i, pool in enumerate(self.pools, 1):
            x = getattr(self, f"conv_block{i}")(x, pool_size=pool)
            x = F.dropout(x, p=self.feature_dropout, training=self.training)
        return x


class Cnn14(_ConvPANN):
    """PANNs' CNN14 (80 M parameters; 0.431 mAP on AudioSet): six blocks of two 3x3 convolutions, 64-2048
    channels, ``fc1`` 2048.

    Args:
        n_out: classes (AudioSet: 527).
        n_mels: mel bins of the input (the checkpoints: 64).
        dropout: before ``fc1``.
        feature_dropout: after each convolution block.

    Examples:
        >>> Cnn14(n_out=11)(torch.randn(2, 1, 64, 401)).shape
        torch.Size([2, 11])
    """

    channels = (64, 128, 256, 512, 1024, 2048)


class Cnn10(_ConvPANN):
    """PANNs' CNN10 (5 M parameters; 0.380 mAP): four blocks of two 3x3 convolutions, 64-512 channels, ``fc1`` 512.

    Examples:
        >>> Cnn10(n_out=11)(torch.randn(2, 1, 64, 401)).shape
        torch.Size([2, 11])
    """

    channels = (64, 128, 256, 512)


class Cnn6(_ConvPANN):
    """PANNs' CNN6 (5 M parameters; 0.343 mAP): four blocks of one 5x5 convolution, 64-512 channels, ``fc1`` 512.

    Examples:
        >>> Cnn6(n_out=11)(torch.randn(2, 1, 64, 401)).shape
        torch.Size([2, 11])
    """

    block, channels = ConvBlock5x5, (64, 128, 256, 512)


def _conv_bn(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.AvgPool2d(stride), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


def _conv_dw(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, 1, 1, groups=c_in, bias=False),
        nn.AvgPool2d(stride),
        nn.BatchNorm2d(c_in),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class MobileNetV1(_PANN):
    """PANNs' MobileNetV1 (4.8 M parameters; 0.389 mAP): depthwise-separable convolutions, 32-1024 channels,
    ``fc1`` 1024.

    Examples:
        >>> MobileNetV1(n_out=11)(torch.randn(2, 1, 64, 401)).shape
        torch.Size([2, 11])
    """

    width = 1024

    def __init__(self, n_out: int = 527, n_mels: int = 64, dropout: float = 0.5, feature_dropout: float = 0.2):
        super().__init__(n_out, n_mels, dropout, feature_dropout)
        plan = [
            (32, 64, 1),
            (64, 128, 2),
            (128, 128, 1),
            (128, 256, 2),
            (256, 256, 1),
            (256, 512, 2),
            *[(512, 512, 1)] * 5,
            (512, 1024, 2),
            (1024, 1024, 1),
        ]
        self.features = nn.Sequential(_conv_bn(1, 32, 2), *(_conv_dw(*step) for step in plan))
        self._heads(n_out)

    def _features(self, x):
        return self.features(x)


PANNS_ARCHS = {"cnn6": Cnn6, "cnn10": Cnn10, "cnn14": Cnn14, "mobilenetv1": MobileNetV1}


def _search_paths(arch: str) -> list[Path]:
    name = PANNS_CHECKPOINTS[arch]
    return [Path.home() / "panns_data" / name, Path(torch.hub.get_dir()) / "checkpoints" / name]


def find_panns_checkpoint(arch: str) -> Path:
    """The published checkpoint of ``arch`` where it is usually kept (``~/panns_data/``, where panns-inference puts
    it, or the torch hub cache's ``checkpoints/``); nothing is downloaded.

    Raises:
        AudioFileError: in neither place; the message gives the file name, the URL and where to put it.

    Examples:
        >>> find_panns_checkpoint("cnn14").name                    # doctest: +SKIP
        'Cnn14_mAP=0.431.pth'
    """
    for path in _search_paths(arch):
        if path.is_file():
            return path
    name = PANNS_CHECKPOINTS[arch]
    raise AudioFileError(
        _search_paths(arch)[0],
        f"the PANNs AudioSet checkpoint for {arch} ({name}) is not on this machine and is not downloaded for you: "
        f"fetch it from {PANNS_URL.format(name)} and pass weights='<path>', or put it in ~/panns_data/ or "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'}; or train from scratch with pretrained=False",
    )


def torch_load(path, what: str):
    """``torch.load`` of a weights file on the CPU (tensors only), with an ``AudioFileError`` naming the file for
    a missing or unreadable one; ``what`` says what the file should be, for the message."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(path, f"no such weights file; pass the path of {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file: report them all the same way
        raise AudioFileError(path, f"cannot be loaded as {what} ({err})") from None


def _read_checkpoint(path) -> dict:
    state = torch_load(path, "a PANNs checkpoint (.pth)")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # the published files: {'model': ...}
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AudioFileError(path, "is not a state dict (a mapping of tensor names to tensors, or {'model': ...})")
    return state


def load_panns_weights(model: _PANN, weights, *, head: bool | None = None) -> dict:
    """Load a PANNs checkpoint into ``model``: every tensor must match by name and shape, except the reference's
    front-end (``spectrogram_extractor.*``, ``logmel_extractor.*``, computed here by the loaders) and, when the
    classifier's size differs (a new task), ``fc_audioset.*``, which keeps its fresh initialisation.

    Args:
        model: a ``Cnn6``, ``Cnn10``, ``Cnn14`` or ``MobileNetV1``.
        weights: path of a checkpoint (``{'model': state_dict}`` as published, or a bare state dict).
        head: load ``fc_audioset`` too (default: when its shape matches the model's).

    Returns:
        The checkpoint's front-end tensors (e.g. ``logmel_extractor.melW``), for a caller that checks them.

    Raises:
        AudioFileError: the file is missing or unreadable, or it does not fit ``model``; the message names the
            missing, unexpected and mis-shaped tensors.

    Examples:
        >>> torch.save({"model": Cnn10(527).state_dict()}, "cnn10.pth")
        >>> model = Cnn10(n_out=11)
        >>> sorted(load_panns_weights(model, "cnn10.pth"))             # the head stays new: 11 classes, not 527
        []
    """
    state = _read_checkpoint(weights)
    front = {k: v for k, v in state.items() if k.startswith(FRONT_END_PREFIXES)}
    state = {k: v for k, v in state.items() if k not in front}
    own = model.state_dict()
    if head is None:
        head = all(k in state and state[k].shape == own[k].shape for k in own if k.startswith("fc_audioset."))
    if not head:
        state = {k: v for k, v in state.items() if not k.startswith("fc_audioset.")}
        own = {k: v for k, v in own.items() if not k.startswith("fc_audioset.")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} (model: {tuple(own[k].shape)})"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:

        def some(names):
            tops = sorted({n.split(".")[0] for n in names})
            return (
                f"{len(names)} tensors in {', '.join(t + '.*' for t in tops)} ("
                + ", ".join(names[:4])
                + (", ..." if len(names) > 4 else "")
                + ")"
            )

        problems = [
            f"missing {some(missing)}" if missing else "",
            f"unexpected {some(unexpected)}" if unexpected else "",
            f"of another shape {some(shapes)}" if shapes else "",
        ]
        raise AudioFileError(
            weights,
            f"does not fit {type(model).__name__} (n_mels={model.n_mels}): "
            + "; ".join(p for p in problems if p)
            + ". Is it another architecture's checkpoint? "
            + ", ".join(f"{a}: {n}" for a, n in PANNS_CHECKPOINTS.items()),
        )
    model.load_state_dict(state, strict=False)
    return front


def create_panns(arch: str, n_out: int, *, weights=None, pretrained: bool = False, **kwargs) -> _PANN:
    """A PANNs network for ``n_out`` classes, from a published checkpoint (``weights=`` path, or ``pretrained``:
    found in ``~/panns_data`` or the torch hub cache) or from scratch.

    Args:
        arch: ``'cnn6'``, ``'cnn10'``, ``'cnn14'`` or ``'mobilenetv1'``.
        n_out: classes.
        weights: path of a checkpoint.
        pretrained: look for the published checkpoint where it is usually kept (nothing is downloaded).
        **kwargs: the network's options (``n_mels``, ``dropout``, ``feature_dropout``).

    Examples:
        >>> create_panns("cnn10", 11)(torch.randn(2, 1, 64, 101)).shape
        torch.Size([2, 11])
    """
    key = arch.lower() if isinstance(arch, str) else arch
    if key not in PANNS_ARCHS:
        raise ParameterError(f"unknown PANNs architecture {arch!r}; choose one of {sorted(PANNS_ARCHS)}")
    model = PANNS_ARCHS[key](n_out=n_out, **kwargs)
    if weights is None and pretrained:
        weights = find_panns_checkpoint(key)
    if weights is not None:
        load_panns_weights(model, weights)
    return model


def panns_splitter(model: _PANN) -> list[list[nn.Parameter]]:
    """fastai parameter groups: the pretrained layers, then the classifier (so ``freeze()`` trains the classifier,
    with fastai's habit of keeping BatchNorm trainable).

    Examples:
        >>> [len(group) for group in panns_splitter(Cnn6(11))]   # bn0, 4 blocks, fc1; the classifier's 2 tensors
        [16, 2]
    """
    body = [p for m in model.body() for p in m.parameters()]
    return [body, list(model.fc_audioset.parameters())]
