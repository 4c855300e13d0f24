"""MusiCNN (Pons and Serra, 2019) in PyTorch, loading the checkpoints the ``musicnn`` package ships, without
TensorFlow.

The network takes log-mel patches ``(batch, 1, 96 mels, frames)`` (``mel_transforms``' layout; the published models
saw 3 s patches of 187 frames: 16 kHz, n_fft 512, hop 256, ``log10(1 + 10000 x)``) and returns 50 tag logits:

- front-end: batch norm of the input, then five convolutions that read musical shapes: two timbral filter banks
  (7 frames by 40 % and 70 % of the mel bands) and three temporal ones (128, 64 and 32 frames by one band), each
  followed by ReLU, batch norm and a max over the bands;
- mid-end: three 7-frame convolutions over the 561 front-end features, the last two residual;
- back-end: max and mean over time of every feature (front- and mid-end, 753), batch norm, a dense layer of 200 with
  ReLU and batch norm, and the tag layer.

Weights come from the TensorFlow checkpoints (``read_tf_checkpoint``); the tensors are mapped by the order in which
the original graph created its layers (``conv2d``, ``conv2d_1``... ``batch_normalization_10``, ``dense``,
``dense_1``). TensorFlow's batch norm uses eps 1e-3, and its 'same' padding puts the odd sample at the end: both are
kept here, so the outputs are the original's.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_choice
from ..errors import AudioFileError, ParameterError
from .tf_checkpoint import read_tf_checkpoint

__all__ = [
    "MUSICNN_CHECKPOINTS",
    "MusiCNN",
    "MusicVGG",
    "load_musicnn_weights",
    "musicnn_checkpoint",
    "musicnn_splitter",
    "musicnn_tags",
]

#: The checkpoints the ``musicnn`` package ships, by the names ``musicnn_checkpoint`` takes.
MUSICNN_CHECKPOINTS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")
_BN_EPS = 1e-3  # TensorFlow's batch-norm default


def _bn(channels: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=_BN_EPS)


def _bn2(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class MusiCNN(nn.Module):
    """MusiCNN (see the module's notes): log-mels ``(batch, 1, n_mels, frames)`` -> tag logits ``(batch, n_out)``.

    Args:
        n_out: outputs (50 tags for the published models).
        n_mels: mel bands of the input (96 for the published models; the timbral filters span 40 % and 70 %).
        mid_filters: filters of the mid-end convolutions (64; 512 for MSD's "big" model).
        dense_units: units of the penultimate layer (200; 500 for "big").
        head_input: what the output layer reads: ``'penultimate'`` (the dense layer, as published) or ``'pooled'``
            (the ``2 * 753`` pooled features before it, for a new task: a linear probe on them carries over much
            better than on the 200-unit layer trained for 50 tags; the dense layers are then left out).

    Examples:
        >>> model = MusiCNN().eval()
        >>> model(torch.randn(2, 1, 96, 187)).shape
        torch.Size([2, 50])
        >>> MusiCNN(11, head_input="pooled").head
        Linear(in_features=1506, out_features=11, bias=True)
    """

    def __init__(
        self,
        n_out: int = 50,
        n_mels: int = 96,
        mid_filters: int = 64,
        dense_units: int = 200,
        head_input: str = "penultimate",
    ):
        super().__init__()
        self.head_input = check_choice("head_input", head_input, ("penultimate", "pooled"))
        timbral, temporal = 204, 51  # int(1.6 * 128), int(1.6 * 32)
        self.input_bn = nn.BatchNorm2d(1, eps=_BN_EPS)
        self.timbral = nn.ModuleList(nn.Conv2d(1, timbral, (int(f * n_mels), 7)) for f in (0.4, 0.7))
        self.temporal = nn.ModuleList(nn.Conv2d(1, temporal, (1, k)) for k in (128, 64, 32))
        self.front_bns = nn.ModuleList(_bn2(c) for c in (timbral, timbral, temporal, temporal, temporal))
        front = 2 * timbral + 3 * temporal  # 561
        self.mid = nn.ModuleList(
            [nn.Conv1d(front, mid_filters, 7, padding=3)]
            + [nn.Conv1d(mid_filters, mid_filters, 7, padding=3) for _ in range(2)]
        )
        self.mid_bns = nn.ModuleList(_bn(mid_filters) for _ in range(3))
        features = front + 3 * mid_filters  # 753
        self.pool_bn = _bn(2 * features)
        pooled = head_input == "pooled"
        self.dense = None if pooled else nn.Linear(2 * features, dense_units)  # (None: no parameter left unused)
        self.dense_bn = None if pooled else _bn(dense_units)
        self.head = nn.Linear(2 * features if pooled else dense_units, n_out)
        self.dropout = nn.Dropout(0.5)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features before the dense layers: ``(batch, 2 * 753)``, max and mean over time of each
        front- and mid-end feature, interleaved as the original flattens them."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ParameterError(f"MusiCNN takes log-mels of shape (batch, 1, n_mels, frames), got {tuple(x.shape)}")
        x = self.input_bn(x)
        maps = []
        for conv, bn in zip(self.timbral, self.front_bns[:2]):  # 'valid' over bands, time padded by 3 each side
            maps.append(bn(F.relu(conv(F.pad(x, (3, 3))))).amax(dim=2))
        for conv, bn in zip(self.temporal, self.front_bns[2:]):  # TensorFlow's 'same': the odd sample at the end
            k = conv.kernel_size[1]
            maps.append(bn(F.relu(conv(F.pad(x, ((k - 1) // 2, k // 2))))).amax(dim=2))
        front = torch.cat(maps, dim=1)  # (batch, 561, frames)
        mids, h = [], front
        for i, (conv, bn) in enumerate(zip(self.mid, self.mid_bns)):
            out = bn(F.relu(conv(h)))
            h = out if i == 0 else out + h
            mids.append(h)
        every = torch.cat([front, *mids], dim=1)  # (batch, 753, frames)
        return torch.stack([every.amax(dim=2), every.mean(dim=2)], dim=-1).flatten(1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """What the output layer reads: the penultimate layer ``(batch, dense_units)``, the embedding the MusiCNN
        papers probe (with ``head_input='pooled'``: the normalised pooled features, ``(batch, 1506)``)."""
        pooled = self.pool_bn(self.features(x))
        if self.dense is None:
            return pooled
        return self.dense_bn(F.relu(self.dense(self.dropout(pooled))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))


# the (bands, frames) kernel and stride of each pool of the two VGG checkpoints, read from their own graphs (the
# musicnn package's Python code describes the MTT one; the MSD checkpoint's graph pools 4 frames, then 4 bands)
_VGG_POOLS = {
    "MTT": [((1, 4), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))],
    "MSD": [((1, 4), (1, 4)), ((4, 1), (4, 1)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))],
}


class MusicVGG(nn.Module):
    """The VGG-like baseline the ``musicnn`` package ships beside MusiCNN: five 3x3 convolutions of 128 filters, each
    with ReLU, batch norm and max pooling, and one dense tag layer over the flattened maps. Its dense layer fixes the
    input: log-mels ``(batch, 1, 96, 187)`` (3 s patches) -> tag logits ``(batch, n_out)``. ``pools`` picks the
    pooling of the ``'MTT'`` or the ``'MSD'`` checkpoint (they differ in their first two pools).

    Examples:
        >>> MusicVGG().eval()(torch.randn(2, 1, 96, 187)).shape
        torch.Size([2, 50])
    """

    def __init__(self, n_out: int = 50, filters: int = 128, pools: str = "MTT"):
        super().__init__()
        if pools not in _VGG_POOLS:
            raise ParameterError(f"pools must be one of {sorted(_VGG_POOLS)} (the checkpoint's layout), got {pools!r}")
        self.layout = pools
        self.input_bn = nn.BatchNorm2d(1, eps=_BN_EPS)
        self.convs = nn.ModuleList(nn.Conv2d(1 if i == 0 else filters, filters, 3, padding=1) for i in range(5))
        self.bns = nn.ModuleList(_bn2(filters) for _ in range(5))
        self.pools = nn.ModuleList(nn.MaxPool2d(k, s) for k, s in _VGG_POOLS[pools])
        self.dropout, self.final_dropout = nn.Dropout(0.25), nn.Dropout(0.5)
        self.head = nn.Linear(2 * filters, n_out)  # 2 frames x 1 band x filters left of a 187 x 96 patch

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened maps before the tag layer, ``(batch, 256)``, in the original's (frames, bands, filters)
        order."""
        if x.ndim != 4 or x.shape[1:] != (1, 96, 187):
            raise ParameterError(f"MusicVGG takes log-mel patches of shape (batch, 1, 96, 187), got {tuple(x.shape)}")
        x = self.input_bn(x)
        for i, (conv, bn, pool) in enumerate(zip(self.convs, self.bns, self.pools)):
            x = pool(bn(F.relu(conv(x if i == 0 else self.dropout(x)))))
        return x.permute(0, 3, 2, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final_dropout(self.features(x)))


def musicnn_checkpoint(name: str = "MTT_musicnn") -> str:
    """The prefix of one of the checkpoints the installed ``musicnn`` package ships (local files only; nothing is
    downloaded), for ``read_tf_checkpoint`` or ``load_musicnn_weights``.

    Raises:
        ParameterError: an unknown name. AudioFileError: the package is not installed, or lacks the files.

    Examples:
        >>> musicnn_checkpoint("MTT_musicnn").endswith("MTT_musicnn/")  # doctest: +SKIP
        True
    """
    if name not in MUSICNN_CHECKPOINTS:
        raise ParameterError(f"unknown MusiCNN checkpoint {name!r}: pick one of {list(MUSICNN_CHECKPOINTS)}")
    folder = _musicnn_folder() / name
    if not (folder / ".index").is_file():
        raise AudioFileError(folder, "holds no checkpoint (.index): reinstall the musicnn package")
    return f"{folder}/"


def _musicnn_folder() -> Path:
    spec = importlib.util.find_spec("musicnn")
    if spec is None or spec.origin is None:
        raise AudioFileError(
            "musicnn",
            "is not installed: `pip install --no-deps musicnn` (29 MB; TensorFlow, which "
            "it declares, is not needed to read its checkpoints)",
        )
    return Path(spec.origin).parent


def musicnn_tags(dataset: str = "MTT") -> list[str]:
    """The 50 tags of the ``musicnn`` package's checkpoints trained on ``'MTT'`` (MagnaTagATune: instruments, moods,
    voices) or ``'MSD'`` (the Million Song Dataset's last.fm tags: genres, decades), in the order of their outputs.
    Read from the installed package's ``configuration.py`` as data (``ast.literal_eval``): none of its code runs.

    Raises:
        ParameterError: another ``dataset``. AudioFileError: the package is not installed, or its lists are not there.

    Examples:
        >>> musicnn_tags("MTT")[:4]  # doctest: +SKIP
        ['guitar', 'classical', 'slow', 'techno']
    """
    key = str(dataset).upper()
    if key not in ("MTT", "MSD"):
        raise ParameterError(f"dataset must be 'MTT' or 'MSD' (what the checkpoints were trained on), got {dataset!r}")
    path = _musicnn_folder() / "configuration.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = {
            t.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        tags = ast.literal_eval(found[f"{key}_LABELS"])
    except (OSError, SyntaxError, KeyError, ValueError) as err:
        raise AudioFileError(path, f"holds no {key}_LABELS list ({err}): reinstall the musicnn package") from err
    if not (isinstance(tags, list) and len(tags) == 50 and all(isinstance(t, str) for t in tags)):
        raise AudioFileError(path, f"{key}_LABELS is not a list of 50 tags: reinstall the musicnn package")
    return tags


def load_musicnn_weights(model: MusiCNN | MusicVGG, checkpoint: str, head: bool = True) -> MusiCNN | MusicVGG:
    """Copy a TensorFlow checkpoint of the ``musicnn`` package (a ``musicnn_checkpoint`` name or a prefix) into
    ``model``.

    Args:
        model: a ``MusiCNN`` (for ``'MTT_musicnn'``, ``'MSD_musicnn'``) or a ``MusicVGG`` (``'MTT_vgg'``,
            ``'MSD_vgg'``) of the checkpoint's sizes.
        checkpoint: a name of ``MUSICNN_CHECKPOINTS``, or the prefix of a checkpoint of the same graph.
        head: also copy the tag layer (``False`` keeps ``model.head``, e.g. for another number of classes).

    Raises:
        AudioFileError: a missing tensor, or one whose shape does not fit, naming both.

    Examples:
        >>> model = load_musicnn_weights(MusiCNN(), "MTT_musicnn")  # doctest: +SKIP
    """
    prefix = musicnn_checkpoint(checkpoint) if checkpoint in MUSICNN_CHECKPOINTS else checkpoint
    tf = {k: v for k, v in read_tf_checkpoint(prefix).items() if "Adam" not in k and "power" not in k}
    targets = {}
    if isinstance(model, MusicVGG):
        wanted = "MSD" if checkpoint == "MSD_vgg" else "MTT" if checkpoint == "MTT_vgg" else model.layout
        if model.layout != wanted:
            raise ParameterError(f"{checkpoint} pools as MusicVGG(pools={wanted!r}); this model has {model.layout!r}")
        for i, conv in enumerate(model.convs):
            targets[f"{i + 1}CNN"] = (conv, _conv2d_kernel)
        bns = [model.input_bn, *model.bns]
        if head:
            targets["dense"] = (model.head, _dense_kernel)
    else:
        for i, conv in enumerate([*model.timbral, *model.temporal]):
            targets[f"conv2d{'' if i == 0 else f'_{i}'}"] = (conv, _conv2d_kernel)
        for i, conv in enumerate(model.mid):
            targets[f"conv2d_{5 + i}"] = (conv, _conv1d_kernel)
        bns = [model.input_bn, *model.front_bns, *model.mid_bns, model.pool_bn]
        if model.dense is not None:  # (head_input='pooled' leaves the dense layers out: the head is new)
            bns.append(model.dense_bn)
            targets["dense"] = (model.dense, _dense_kernel)
            if head:
                targets["dense_1"] = (model.head, _dense_kernel)
        elif head:
            raise ParameterError("a MusiCNN with head_input='pooled' has a new head: load it with head=False")
    for i, bn in enumerate(bns):
        targets[f"batch_normalization{'' if i == 0 else f'_{i}'}"] = (bn, None)
    with torch.no_grad():
        for scope, (layer, weight) in targets.items():
            if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
                pairs = {
                    "beta": layer.bias,
                    "gamma": layer.weight,
                    "moving_mean": layer.running_mean,
                    "moving_variance": layer.running_var,
                }
                for name, param in pairs.items():
                    _copy(tf, f"{scope}/{name}", param, torch.from_numpy, prefix)
            else:
                _copy(tf, f"{scope}/kernel", layer.weight, weight, prefix)
                _copy(tf, f"{scope}/bias", layer.bias, torch.from_numpy, prefix)
    return model


def _conv2d_kernel(w: np.ndarray) -> torch.Tensor:
    """TensorFlow's (time, bands, in, out) kernel as torch's (out, in, bands, time) over (batch, 1, mels, frames)."""
    return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 1, 0)))


def _conv1d_kernel(w: np.ndarray) -> torch.Tensor:
    """A mid-end kernel (time, features, 1, out), which TensorFlow runs over features laid out as bands, as
    torch's Conv1d (out, features, time)."""
    return torch.from_numpy(np.ascontiguousarray(w[:, :, 0, :].transpose(2, 1, 0)))


def _dense_kernel(w: np.ndarray) -> torch.Tensor:
    """TensorFlow's (in, out) dense kernel as torch's (out, in)."""
    return torch.from_numpy(np.ascontiguousarray(w.T))


def _copy(tensors: dict, name: str, param: torch.Tensor, convert, prefix: str):
    if name not in tensors:
        raise AudioFileError(prefix, f"has no tensor {name!r}: not a checkpoint of this MusiCNN graph")
    value = convert(tensors[name])
    if tuple(value.shape) != tuple(param.shape):
        raise AudioFileError(
            prefix,
            f"tensor {name!r} has shape {tuple(tensors[name].shape)}, which does not fit "
            f"the model's {tuple(param.shape)}: build MusiCNN with the checkpoint's sizes",
        )
    param.copy_(value)


def musicnn_splitter(model: MusiCNN | MusicVGG) -> list[list[nn.Parameter]]:
    """fastai parameter groups, from the input to the tag layer, so that ``freeze()`` trains the head (with
    fastai's habit of keeping batch norm trainable) and ``fine_tune``'s ``slice(lr / 100, lr)`` gives each group
    a rate between, as ImageNet models get: MusiCNN's front-end, its mid-end (with the pooled features' batch
    norm), its dense layer (absent with ``head_input='pooled'``) and the head; VGG's first two conv blocks, the
    last three, and the head.

    Examples:
        >>> [len(group) for group in musicnn_splitter(MusiCNN(11))]
        [22, 14, 4, 2]
        >>> [len(group) for group in musicnn_splitter(MusicVGG(11))]
        [10, 12, 2]
    """
    if isinstance(model, MusiCNN):
        groups = [
            [model.input_bn, model.timbral, model.temporal, model.front_bns],
            [model.mid, model.mid_bns, model.pool_bn],
            [model.dense, model.dense_bn],
            [model.head],
        ]
    else:
        groups = [
            [model.input_bn, model.convs[:2], model.bns[:2]],
            [model.convs[2:], model.bns[2:]],
            [model.head],
        ]
    groups = [[p for m in group if m is not None for p in m.parameters()] for group in groups]
    return [g for g in groups if g]
