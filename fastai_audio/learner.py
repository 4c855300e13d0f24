"""``audio_learner`` / ``create_cnn``: an ImageNet CNN adapted to spectrograms, as a fastai ``Learner``.

The first convolution of a torchvision ResNet (or any arch whose stem is a ``Conv2d``) is rebuilt for the
spectrogram's channel count. For one channel the pretrained RGB kernels are **summed**, not averaged: a grey image fed
to the original network reaches the stem as three identical channels, so its response is exactly the summed kernel
applied once. Summing keeps the activations, and the BatchNorm statistics right after the stem, at the scale the
pretrained weights expect for inputs of ImageNet-like spread, which the front-end's ``SpecNormalize`` provides
(standardised spectrograms, not ImageNet's RGB statistics). Averaging would shrink them threefold.
"""

from __future__ import annotations

from . import _compat  # noqa: F401  (first: it imports fastai with fastai's import-time warning silenced)

# isort: split
import urllib.error
import urllib.request
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fastai.callback.all  # noqa: F401  (fit_one_cycle, fine_tune, lr_find, to_fp16... are patched on by it)
import numpy as np
import pandas as pd
import torch
from fastai.callback.core import TrainEvalCallback
from fastai.callback.progress import CSVLogger, ProgressCallback, ShowGraphCallback
from fastai.callback.tracker import EarlyStoppingCallback, ReduceLROnPlateau, SaveModelCallback, TrackerCallback
from fastai.learner import CastToTensor, Learner, Recorder
from fastai.optimizer import Adam
from fastai.torch_core import defaults, num_distrib, params, rank_distrib
from fastai.vision.learner import add_head, create_body, default_split, model_meta, num_features_model
from torch import nn

from . import interpret  # noqa: F401  (registers show_results / plot_top_losses for audio)
from ._compat import PREDICT_DIRECT, predict_direct
from ._validate import check_positive
from .atomic import atomic_file
from .core import TensorAudio, TensorSpectrogram
from .errors import AudioFileError, ParameterError
from .models.musicnn import musicnn_splitter
from .models.panns import PANNS_ARCHS, create_panns, panns_splitter, torch_load
from .transforms.item import find_opener
from .transforms.spectral import (
    AmplitudeToDB,
    AudioFrontEnd,
    LogCompress,
    MelSpectrogram,
    SpecNormalize,
    SpectralTransform,
    spectral_steps,
)

__all__ = [
    "AudioLearner",
    "EpochCheckpoint",
    "KeepBest",
    "audio_learner",
    "cross_validate",
    "CrossValidation",
    "create_cnn",
    "create_audio_model",
    "hub_weights_cached",
]


class AudioLearner(Learner):
    """A fastai ``Learner`` whose ``predict`` also takes raw arrays with their ``sample_rate``, and is fast.

    Examples:
        >>> label, index, probs = learn.predict("note.wav")   # any format, rate and channel count the loaders read
        >>> label in learn.dls.vocab, probs.shape
        (True, torch.Size([2]))
        >>> label, index, probs = learn.predict(samples, sample_rate=44100)  # an array or tensor (samples,) or
        >>> round(float(probs.sum()), 4)                                   # (channels, samples)
        1.0
    """

    def predict(self, item, rm_type_tfms=None, with_input: bool = False, *, sample_rate: int | None = None):
        """Predict one clip: a path, a ``TensorAudio``, or an array/tensor with its ``sample_rate``.

        Returns fastai's ``(decoded label, label index, probabilities)`` (plus the input with ``with_input``). The
        clip goes through the validation transforms: resampled, downmixed and centre-cropped like the training data.

        The result is fastai's ``Learner.predict``'s, computed without building a ``DataLoader`` and running the
        callback loop for one item, which costs more than the network (the seam's ``predict_direct`` shim,
        ``fastai_audio._compat``). Learners with callbacks that could change predictions (mixed precision,
        anything not in ``_PREDICT_SAFE_CBS``) take fastai's own path.
        """
        if isinstance(item, str):
            item = Path(item)
        elif not isinstance(item, (Path, TensorAudio)):
            if sample_rate is None:
                raise ParameterError("predict on an array or tensor needs its rate: pass sample_rate=<Hz>")
            item = TensorAudio.create(item, sample_rate=sample_rate)
        if rm_type_tfms is None and not with_input and self._can_predict_direct():
            return predict_direct(self, item, find_opener(self.dls.valid_ds)[0] or 0)
        return super().predict(item, rm_type_tfms=rm_type_tfms, with_input=with_input)

    def embed(self, items, *, bs: int | None = None, dls=None, with_labels: bool = False, layer: str | None = None):
        """One embedding per clip: the network's penultimate features, the input of its last ``Linear`` layer (the
        pooled features a linear probe or a nearest-neighbour search uses), computed with the network frozen.

        Args:
            items: what the loaders' items are (paths, or rows for ``from_df`` loaders), or ``TensorAudio`` clips;
                each goes through the validation transforms (resampled, downmixed, centre-cropped, no augmentation).
            bs: batch size (default: the loaders').
            dls: the loaders whose transforms make the network's input (default: the learner's).
            with_labels: the items carry labels (the loaders' own items): also return their targets (class indices,
                or one-hot rows for multi-label loaders).
            layer: the name of another module of the model (``dict(learn.model.named_modules())``) whose input is
                the embedding, e.g. ``"dense"`` for MusiCNN's 1,506 pooled features before its 200-unit bottleneck.

        Returns:
            ``(n_items, dim)`` float32 on the CPU, in the order of ``items``; with ``with_labels``, ``(features,
            targets)``.

        Examples:
            >>> learn.embed(["note.wav", "note.flac"]).shape    # resnet18 with fastai's head: 512 features
            torch.Size([2, 512])
        """
        modules = dict(self.model.named_modules())
        if layer is not None and layer not in modules:
            raise ParameterError(f"the model has no module {layer!r}; its modules are {sorted(modules)[:20]}...")
        last = [modules[layer]] if layer is not None else [m for m in modules.values() if isinstance(m, nn.Linear)]
        if not last:
            raise ParameterError(f"{type(self.model).__name__} has no Linear layer whose input is an embedding")
        dls = dls if dls is not None else self.dls
        dl = dls.test_dl(list(items), bs=bs or dls.bs, num_workers=0, with_labels=with_labels)
        if dl.n == 0:
            raise ParameterError("embed got no items")
        found, targets = [], []
        hook = last[-1].register_forward_hook(lambda m, args, out: found.append(args[0].detach().float().cpu()))
        training, device = self.model.training, next(self.model.parameters()).device
        try:
            self.model.eval()
            with torch.no_grad():
                for b in dl:
                    self.model(b[0].to(device))
                    if with_labels:
                        targets.append(b[1].as_subclass(torch.Tensor).cpu())
        finally:
            hook.remove()
            self.model.train(training)
        order = torch.as_tensor(list(dl.get_idxs()))  # (variable-length loaders sort their items by length)
        features = torch.empty(len(order), found[0].shape[-1])
        features[order] = torch.cat(found).flatten(1)
        if not with_labels:
            return features
        got = torch.cat(targets)  # class indices, or one-hot rows for multi-label loaders
        labels = torch.empty_like(got)
        labels[order] = got
        return features, labels

    def export(self, fname="export.pkl", **kwargs):
        """fastai's ``export`` (the learner pickled for inference, to ``self.path/fname``), written whole or not at
        all: a full disk or a read-only folder leaves the file that was there untouched and raises an
        ``AudioFileError`` naming it. The file is a pickle: loading it runs code, so share the ONNX export instead.

        Examples:
            >>> learn.export("model.pkl")
            >>> load_learner(learn.path / "model.pkl").dls.vocab
            ['high', 'low']
        """
        if rank_distrib():  # fastai writes on rank 0 only
            return super().export(fname, **kwargs)
        with atomic_file(self.path / fname, "model") as tmp:
            super().export(tmp.absolute(), **kwargs)

    def export_onnx(self, path, **kwargs) -> Path:
        """Write the whole inference pipeline, spectrogram included, as one ONNX graph: raw ``(batch, samples)``
        audio in, probabilities out, labels and rates in its metadata (:func:`fastai_audio.export.export_onnx`).

        Examples:
            >>> learn.export_onnx("model.onnx").suffix
            '.onnx'
        """
        from .export import export_onnx

        return export_onnx(self, path, **kwargs)

    @contextmanager
    def distrib_ctx(
        self, sync_bn: bool | None = None, in_notebook: bool = False, timeout: float | None = None, **kwargs
    ):
        """fastai's ``distrib_ctx``: train in data-parallel processes (DDP through accelerate) when launched by
        ``torchrun`` or ``accelerate launch``; one process (no launcher) trains as usual.

        ``timeout`` (seconds, default ``distributed.DEFAULT_TIMEOUT``, 5 minutes; torch's own is 30) bounds how long
        a collective operation waits for every rank: past it, training stops with a ``DistributedTimeoutError``
        that names, on rank 0, the rank that stopped answering.

        With this project's :class:`~fastai_audio.distributed.AudioDistributedTrainer`: any backend (gloo on CPUs,
        nccl on GPUs), ``sync_bn`` on CUDA only (``None``: where it works), exact validation metrics, and
        ``len(dl)`` right for every rank. Other arguments go to accelerate's ``Accelerator`` (e.g.
        ``mixed_precision='bf16'``); see :mod:`fastai_audio.distributed` and the "Scaling out" guide.

        Examples:
            >>> with learn.distrib_ctx():           # torchrun --nproc_per_node 2 train.py; alone: one process
            ...     learn.fit_one_cycle(1, 1e-3)
            [0, ...]
        """
        from datetime import timedelta

        from accelerate.utils import InitProcessGroupKwargs

        from . import distributed  # (fastai.distributed patches Learner.distrib_ctx on)

        timeout = distributed.DEFAULT_TIMEOUT if timeout is None else check_positive("timeout", timeout)
        handlers = list(kwargs.pop("kwargs_handlers", None) or [])
        if not any(isinstance(h, InitProcessGroupKwargs) for h in handlers):
            handlers.append(InitProcessGroupKwargs(timeout=timedelta(seconds=timeout)))
        with Learner.distrib_ctx(self, sync_bn, in_notebook, kwargs_handlers=handlers, **kwargs):
            try:
                yield self
            except Exception as err:
                if num_distrib() > 1 and distributed.is_timeout(err):
                    raise distributed.diagnose_timeout(err, timeout) from err
                raise

    def to_distributed(self, sync_bn: bool | None = None, **kwargs):
        """Add :class:`~fastai_audio.distributed.AudioDistributedTrainer` (fastai's ``to_distributed``, with this
        project's trainer); ``distrib_ctx`` calls it for you under a launcher.

        Examples:
            >>> trainer = learn.to_distributed().cbs[-1]      # distrib_ctx does this under a launcher
            >>> type(trainer).__name__
            'AudioDistributedTrainer'
            >>> learn = learn.remove_cb(trainer)              # and this on leaving (detach_distributed)
        """
        from .distributed import AudioDistributedTrainer

        self.add_cb(AudioDistributedTrainer(sync_bn, **kwargs))
        if rank_distrib():
            self.remove_cb(ProgressCallback)
        return self

    def _can_predict_direct(self) -> bool:
        return (
            PREDICT_DIRECT.on
            and getattr(self.dls, "n_inp", 1) == 1
            and hasattr(self.dls, "valid_ds")
            and all(isinstance(cb, _PREDICT_SAFE_CBS) for cb in self.cbs)
        )


class EpochCheckpoint(SaveModelCallback):
    """Save model and optimiser after every epoch as ``{fname}_{epoch}.pth``, for resuming an interrupted run.

    A run resumed with ``fit_one_cycle(n, start_epoch=k)`` skips epochs ``0..k-1``, but fastai still calls
    ``after_epoch`` for them; this callback leaves their checkpoints alone, where ``SaveModelCallback`` would
    overwrite them with the resumed weights.

    Examples:
        >>> learn.fit_one_cycle(2, cbs=EpochCheckpoint())                # models/epoch_0.pth, models/epoch_1.pth
        [0, ...]
        [1, ...]
        >>> learn = learn.load("epoch_0", with_opt=True)                 # interrupted after epoch 0: resume
        >>> learn.fit_one_cycle(2, start_epoch=1, cbs=EpochCheckpoint(1))    # epoch 0 skipped
        [0, '00:00']
        [1, ...]
    """

    def __init__(self, start_epoch: int = 0, fname: str = "epoch"):
        super().__init__(fname=fname, every_epoch=True, with_opt=True)
        self.start_epoch = start_epoch

    def after_epoch(self):
        if self.epoch >= self.start_epoch:
            save_whole(self.learn, f"{self.fname}_{self.epoch}", self.with_opt)


def save_whole(learn, name: str, with_opt: bool = True) -> Path:
    """``learn.save(name)`` (``{path}/{model_dir}/{name}.pth``, weights and optimiser state), written whole or not
    at all (``atomic_file``): an interrupted or failed save leaves the checkpoint that was there untouched.

    Examples:
        >>> save_whole(learn, "ckpt").name
        'ckpt.pth'
    """
    if rank_distrib():  # fastai saves on rank 0 only
        return learn.save(name, with_opt=with_opt)
    dest = Path(learn.path) / learn.model_dir / f"{name}.pth"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(dest, "checkpoint") as tmp:
        learn.save(tmp.with_suffix("").absolute(), with_opt=with_opt)
    return dest


class KeepBest(SaveModelCallback):
    """Keep the best epoch: fastai's ``SaveModelCallback`` watching the validation metric, loaded back when training
    ends, so the learner holds the epoch that scored best on the validation set, not the last one.

    ``monitor=None`` watches the first metric (e.g. ``accuracy``, higher is better) or, without metrics,
    ``valid_loss`` (lower is better). The best weights are saved as ``{model_dir}/{fname}.pth``; ``best_epoch``
    and ``best`` say which epoch was kept and its score.

    Args:
        monitor: the recorder column to watch (``'accuracy'``, ``'valid_loss'``, ...), or None (see above).
        fname: file name of the saved weights (without ``.pth``).
        min_delta: smallest change counted as an improvement.
        verbose: print each new best (on rank 0 under DDP).

    Examples:
        >>> keep = KeepBest(verbose=False)
        >>> learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy, cbs=keep)
        >>> learn.fit_one_cycle(2)
        [0, ...]
        [1, ...]
        >>> keep.monitor, keep.best_epoch in (0, 1)     # learn now holds the weights of epoch keep.best_epoch
        ('accuracy', True)
    """

    def __init__(self, monitor: str | None = None, fname: str = "best", min_delta: float = 0.0, verbose: bool = True):
        super().__init__(monitor=monitor or "valid_loss", fname=fname, min_delta=min_delta)
        self.auto, self.delta, self.verbose = monitor is None, abs(min_delta), verbose
        self.best_epoch, self._started, self._trained = None, False, False

    # fastai runs the fit events around validate() and get_preds() too (with no training phase): the tracking
    # starts with a fit's first training phase and stops with that fit, so those calls leave it alone
    def before_fit(self):
        self._started = self._trained = False

    def before_train(self):
        if self._started or hasattr(self.learn, "lr_finder"):
            return
        self._started = True
        if self.auto:
            names = list(self.recorder.metric_names[1:])  # epoch, train_loss, valid_loss, metrics..., time
            metrics = [n for n in names if n not in ("train_loss", "valid_loss", "time")]
            self.monitor = metrics[0] if metrics else "valid_loss"
            # the direction, as TrackerCallback's __init__ picks it for a monitor it is given
            lower = "loss" in self.monitor or "error" in self.monitor
            self.comp, self.min_delta = (np.less, -self.delta) if lower else (np.greater, self.delta)
        self.best_epoch = None
        super().before_fit()

    def after_train(self):
        self._trained = self._started

    def after_epoch(self):  # SaveModelCallback's, printing on rank 0 only (and not at all without verbose)
        if not self._trained:
            return  # no training this epoch: validate(), get_preds(), or an epoch a resumed fit skipped
        self._trained = False
        TrackerCallback.after_epoch(self)
        if self.new_best:
            self.best_epoch = self.epoch
            if self.verbose and not rank_distrib():
                print(f"Better model found at epoch {self.epoch} with {self.monitor} value: {self.best}.")
            save_whole(self.learn, self.fname, self.with_opt)

    def after_fit(self):
        if self._started and self.best_epoch is not None:
            super().after_fit()  # load the best epoch back
        self._started = False


# Callbacks that only act while fitting (or only log): predict takes the fast path when these are all a learner has.
_PREDICT_SAFE_CBS = (
    TrainEvalCallback,
    Recorder,
    CastToTensor,
    ProgressCallback,
    ShowGraphCallback,
    CSVLogger,
    SaveModelCallback,
    EarlyStoppingCallback,
    ReduceLROnPlateau,
)


# what fastai's vision learner assumes for an arch it has no metadata for: fastai's cut and its default split
_DEFAULT_META = {"cut": None, "split": default_split}


def _input_channels(dls, front: AudioFrontEnd | None = None) -> int:
    x = dls.one_batch()[0]
    if front is not None:
        spectral = [type(t.module).__name__ for t in dls.after_batch.fs if isinstance(t, SpectralTransform)]
        if spectral:
            raise ParameterError(
                f"the DataLoaders already compute spectrograms ({', '.join(spectral)} in batch_tfms); with "
                "front_end= the model computes them: build the loaders without the spectral batch_tfms"
            )
        with torch.no_grad():
            x = front.to(x.device)(x)  # (the learner puts the whole model on the loaders' device anyway)
    if not isinstance(x, TensorSpectrogram) and x.ndim != 4:
        raise ParameterError(
            f"the batches are {type(x).__name__} {tuple(x.shape)}, not spectrograms (batch, channels, freq, time): "
            "add the front-end, e.g. batch_tfms=mel_transforms('nsynth') or get_frequency_batch_transforms(...), "
            "or put it in the model with front_end=[...]"
        )
    return int(x.shape[1])


class _FrontEndSplitter:
    """Parameter groups of ``nn.Sequential(AudioFrontEnd, cnn)``: the arch's groups of ``cnn``, the front-end's
    parameters joining the first (so ``freeze()`` freezes them with the pretrained body)."""

    def __init__(self, split):
        self.split = split

    def __call__(self, model):
        groups = [list(g) for g in self.split(model[1])]
        groups[0] = list(params(model[0])) + groups[0]
        return groups


def _hub_file(arch) -> tuple[object, Path]:
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    return weights, Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def hub_weights_cached(arch) -> bool:
    """True when ``arch``'s default ImageNet weights are already in the torch hub cache (nothing is downloaded).

    For notebooks and scripts that should use pretrained weights when the machine has them and train from scratch
    otherwise. Archs without torchvision's registered weights return False.

    Examples:
        >>> learn = create_cnn(dls, models.resnet18, pretrained=hub_weights_cached(models.resnet18))
    """
    try:
        return _hub_file(arch)[1].is_file()
    except (ValueError, KeyError, TypeError):
        return False


def _check_weights_available(arch, timeout: float = 3.0):
    """Fail within seconds, naming the file and where it goes, when the weights are neither cached nor reachable."""
    try:
        weights, cached = _hub_file(arch)
    except (ValueError, KeyError, TypeError):
        return  # not a torchvision builder with registered weights: let the arch fetch its own
    if cached.exists():
        return
    try:
        urllib.request.urlopen(urllib.request.Request(weights.url, method="HEAD"), timeout=timeout).close()
    except (urllib.error.URLError, OSError) as err:
        raise AudioFileError(
            cached,
            f"pretrained weights for {arch.__name__} are not in the torch hub cache and cannot be downloaded "
            f"({getattr(err, 'reason', err)}); copy {cached.name} there (it comes from {weights.url}), pass "
            "weights='<path to a .pth state dict>', or train from scratch with pretrained=False",
        ) from None


def _load_state_dict(path) -> dict:
    state = torch_load(path, "a state dict saved with torch.save")
    return state.get("state_dict", state) if isinstance(state, dict) else state


def create_audio_model(
    arch, n_out: int, n_in: int = 1, *, pretrained: bool = True, weights=None, cut=None, **head_kwargs
) -> torch.nn.Module:
    """An ImageNet CNN with its stem rebuilt for ``n_in`` spectrogram channels and a new head of ``n_out`` outputs.

    Args:
        arch: a torchvision model builder (``resnet18``, ``resnet34``, ``resnet50``... or fastai's aliases).
        n_out: number of outputs (classes).
        n_in: spectrogram channels (1 for a log-mel; 3 with ``Delta(order=2)``).
        pretrained: start from ImageNet weights (from the torch hub cache, downloaded there when online).
        weights: a path to a state dict to start from instead of the hub's.
        cut: where to cut the body (default: fastai's for the arch).
        **head_kwargs: fastai ``add_head`` options (``lin_ftrs``, ``ps``, ``concat_pool``...).

    Returns:
        ``nn.Sequential(body, head)`` taking ``(batch, n_in, freq, time)``.

    Examples:
        >>> model = create_audio_model(resnet18, n_out=11, n_in=1, pretrained=False)
        >>> model(torch.randn(2, 1, 64, 251)).shape
        torch.Size([2, 11])
    """
    meta = model_meta.get(arch, _DEFAULT_META)
    if weights is not None:
        model = arch(weights=None)
        missing, unexpected = model.load_state_dict(_load_state_dict(weights), strict=False)
        if missing:
            raise AudioFileError(
                weights, f"is not a {arch.__name__} state dict: {len(missing)} tensors are missing, e.g. {missing[:3]}"
            )
        pretrained = True
    elif pretrained:
        _check_weights_available(arch)
        model = arch(weights=meta.get("weights", "DEFAULT"))
    else:
        model = arch(weights=None)
    body = create_body(model, n_in, pretrained, cut if cut is not None else meta["cut"])
    return add_head(body, num_features_model(body), n_out, **head_kwargs)


def _front_end_issues(dls, preset: str) -> list[str]:
    """How the loaders' front-end differs from ``MEL_PRESETS[preset]``, the log-mel a checkpoint was trained on:
    the mel parameters, the compression (decibels or ``LogCompress``), and no ``SpecNormalize`` (the networks'
    first BatchNorm normalises)."""
    from .transforms.presets import MEL_PRESETS

    want, issues = MEL_PRESETS[preset], []
    tfms = spectral_steps(getattr(dls, "after_batch", None))
    mel = next((t for t in tfms if isinstance(t, MelSpectrogram)), None)
    if mel is None:
        issues.append("the loaders compute no MelSpectrogram")
    else:
        names = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "mel_scale", "norm", "power")
        for name in (*names, "pad_mode"):
            have, expected = getattr(mel, name), getattr(want, name)
            if name == "f_max":  # None is the Nyquist frequency
                have, expected = have or mel.sample_rate / 2, expected or want.sample_rate / 2
            if (float(have) if isinstance(have, (int, float)) else have) != expected:
                issues.append(f"{name}={have!r} (the checkpoints: {expected!r})")
    db = next((t for t in tfms if isinstance(t, AmplitudeToDB)), None)
    log = next((t for t in tfms if isinstance(t, LogCompress)), None)
    if want.compression is not None:
        if log is None or log.scale != want.compression:
            have = "no LogCompress" if log is None else f"LogCompress(scale={log.scale:g})"
            issues.append(f"{have} (the checkpoints: LogCompress(scale={want.compression:g}))")
        if db is not None:
            issues.append("AmplitudeToDB takes decibels of what the checkpoints saw log-compressed")
    elif db is None or db.ref != want.ref or db.top_db is not None:
        issues.append(
            "AmplitudeToDB(ref=1.0, top_db=None) is missing"
            if db is None
            else f"AmplitudeToDB(ref={db.ref!r}, top_db={db.top_db!r}) (the checkpoints: ref=1.0, top_db=None)"
        )
    if any(isinstance(t, SpecNormalize) for t in tfms):
        issues.append("SpecNormalize rescales the log-mel the network's first BatchNorm expects raw")
    return issues


def _panns_front_end_issues(dls, front_tensors: dict | None = None) -> list[str]:
    """``_front_end_issues`` for ``'panns'``, and whether the checkpoint's own mel filterbank
    (``logmel_extractor.melW``) is that preset's."""
    from .functional.spectral import mel_filterbank
    from .transforms.presets import MEL_PRESETS

    want, issues = MEL_PRESETS["panns"], _front_end_issues(dls, "panns")
    melw = (front_tensors or {}).get("logmel_extractor.melW")
    if melw is not None:
        fb = mel_filterbank(
            want.sample_rate,
            want.n_fft,
            want.n_mels,
            f_min=want.f_min,
            f_max=want.f_max,
            mel_scale=want.mel_scale,
            norm=want.norm,
        ).T
        if melw.shape != fb.shape or not torch.allclose(melw.float(), fb, atol=1e-6, rtol=1e-4):
            issues.append("the checkpoint's own mel filterbank (logmel_extractor.melW) is not the 'panns' preset's")
    return issues


def _panns_learner(dls, arch: str, n_out: int, *, pretrained: bool, weights, **kwargs):

    from .models.panns import find_panns_checkpoint, load_panns_weights

    x = dls.one_batch()[0]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ParameterError(
            f"{arch} takes log-mel batches (batch, 1, mels, frames); the loaders give {type(x).__name__} "
            f"{tuple(x.shape)}: build them with sample_rate=32000 and batch_tfms=mel_transforms('panns')"
        )
    model = create_panns(arch, n_out, n_mels=int(x.shape[2]), **kwargs)
    if weights is None and pretrained:
        weights = find_panns_checkpoint(arch.lower())
    if weights is not None:
        issues = _panns_front_end_issues(dls, load_panns_weights(model, weights))
        if issues:
            warnings.warn(
                f"{Path(weights).name} was trained on the 'panns' log-mel; these loaders differ: "
                + "; ".join(issues)
                + ". Build them with AudioDataLoaders...(sample_rate=32000, batch_tfms=mel_transforms('panns'))",
                stacklevel=3,
            )
    return model, weights


def _musicnn_learner(
    dls, n_out: int, *, pretrained: bool, weights, vgg: bool = False, **kwargs
) -> tuple[nn.Module, bool]:
    """MusiCNN (or, with ``vgg``, its VGG baseline) for ``n_out`` outputs, with the ``musicnn`` package's weights
    (``'MTT'``, ``'MSD'``, or a checkpoint prefix; ``pretrained`` without ``weights``: ``'MTT'``): its 50-tag layer
    kept for 50 outputs, a new one otherwise. ``kwargs`` go to ``MusiCNN`` (``head_input='pooled'``)."""
    from .models.musicnn import MusiCNN, MusicVGG, load_musicnn_weights

    what = "MusicVGG" if vgg else "MusiCNN"
    x = dls.one_batch()[0]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ParameterError(
            f"{what} takes log-mel batches (batch, 1, mels, frames); the loaders give {type(x).__name__} "
            f"{tuple(x.shape)}: build them with sample_rate=16000 and batch_tfms=mel_transforms('musicnn')"
        )
    if vgg and tuple(x.shape[2:]) != (96, 187):
        raise ParameterError(
            f"MusicVGG takes the 3 s patches it was trained on, 96 mels x 187 frames; the loaders give {x.shape[2]} x "
            f"{x.shape[3]}: build them with sample_rate=16000, duration=2.98 and batch_tfms=mel_transforms('musicnn')"
        )
    if weights is None and pretrained:
        weights = "MTT"
    key = str(weights).upper() if weights is not None else "MTT"
    if vgg:
        if kwargs:
            raise ParameterError(f"MusicVGG takes no {', '.join(map(repr, kwargs))}: those are MusiCNN's")
        model = MusicVGG(n_out, pools=key if key in ("MTT", "MSD") else "MTT")
    else:
        model = MusiCNN(n_out, n_mels=int(x.shape[2]), **kwargs)
    if weights is None:
        return model, False
    if int(x.shape[2]) != 96:
        raise ParameterError(f"{what}'s checkpoints were trained on 96 mel bands; the loaders give {x.shape[2]}")
    suffix = "vgg" if vgg else "musicnn"
    name = {"MTT": f"MTT_{suffix}", "MSD": f"MSD_{suffix}"}.get(key, str(weights))
    load_musicnn_weights(model, name, head=n_out == 50 and getattr(model, "head_input", None) != "pooled")
    issues = _front_end_issues(dls, "musicnn")
    if issues:
        warnings.warn(
            f"the musicnn checkpoints were trained on the 'musicnn' log-mel; these loaders differ: {'; '.join(issues)}"
            ". Build them with AudioDataLoaders...(sample_rate=16000, batch_tfms=mel_transforms('musicnn'))",
            stacklevel=3,
        )
    return model, True


def audio_learner(
    dls,
    arch=None,
    *,
    pretrained: bool = True,
    weights=None,
    n_out: int | None = None,
    front_end=None,
    loss_func=None,
    metrics=None,
    opt_func=Adam,
    lr=defaults.lr,
    cbs=None,
    splitter=None,
    path=None,
    model_dir="models",
    **kwargs,
) -> AudioLearner:
    """An ``AudioLearner`` (a fastai ``Learner``) for spectrogram batches: ``create_audio_model`` + fastai's loop.

    The spectrogram's channel count comes from one batch of ``dls``; the classes from ``dls.c``. With ``pretrained``
    the body is frozen (``fine_tune`` / ``fit_one_cycle`` then ``unfreeze`` as usual). Offline with the weights not
    cached, an ``AudioFileError`` names the file and where to put it within seconds.

    ``audio_learner(dls, "musicnn", weights="MTT")`` (or ``"MSD"``) builds MusiCNN with the weights the ``musicnn``
    package ships (:mod:`fastai_audio.models.musicnn`; ``pip install --no-deps musicnn``): the 50-tag layer is kept
    when ``n_out`` is 50 (tagging), replaced by a new one otherwise (fine-tuning), and what was loaded is frozen. The
    loaders must give 96-mel log-mels of 16 kHz audio (``mel_transforms("musicnn")``; a warning lists any
    difference). ``"vgg"`` builds the package's VGG baseline the same way, on 3 s patches of exactly 187 frames
    (``duration=2.98``).

    PANNs' AudioSet CNNs are named by string: ``audio_learner(dls, "cnn14", weights="Cnn14_mAP=0.431.pth")``
    (also ``"cnn6"``, ``"cnn10"``, ``"mobilenetv1"``; :mod:`fastai_audio.models.panns`) loads the published
    checkpoint, all but its 527-class AudioSet classifier, into a network for ``dls.c`` classes and freezes what it
    loaded. The loaders must compute the log-mel those checkpoints expect: ``sample_rate=32000`` and
    ``batch_tfms=mel_transforms("panns")`` (a warning lists any difference). ``pretrained=True`` without
    ``weights`` looks for the checkpoint in ``~/panns_data/`` and the torch hub cache; nothing is downloaded.

    Args:
        dls: ``DataLoaders`` whose batches are ``TensorSpectrogram (B, C, F, T)`` (the front-end in ``batch_tfms``).
        arch: torchvision builder (default ``resnet18``), ``"musicnn"``, ``"vgg"``, or a PANNs name (``"cnn14"``...).
        pretrained: ImageNet weights from the torch hub cache (PANNs: the AudioSet checkpoint, see above).
        weights: path to a state dict instead (PANNs: a published checkpoint).
        n_out: outputs (default ``dls.c``).
        front_end: spectral transforms (or an ``AudioFrontEnd``) to run *inside the model* instead of in the
            loaders, e.g. ``[MelSpectrogram(trainable=True), AmplitudeToDB(), SpecNormalize()]``: their trainable window
            and filterbank are then optimised with the network (nnAudio's idea). ``dls`` must give raw audio; the
            model is ``nn.Sequential(AudioFrontEnd, cnn)`` and ``SpecNormalize`` gets its statistics from ``dls.train``.
        loss_func, metrics, opt_func, lr, cbs, splitter, path, model_dir: as in fastai's ``Learner``.
        **kwargs: ``create_audio_model`` options (``cut``, ``lin_ftrs``, ``ps``...); for PANNs, the network's
            (``dropout``, ``feature_dropout``); for MusiCNN, ``head_input='pooled'`` (the new head reads the 1,506
            pooled features instead of the 200-unit layer trained for the 50 tags).

    Examples:
        >>> learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy)  # True: ImageNet weights
        >>> learn.fit_one_cycle(1)           # epoch, train_loss, valid_loss, accuracy, time
        [0, ...]
    """
    from torchvision.models import resnet18

    arch = arch or resnet18
    n_out = n_out if n_out is not None else getattr(dls, "c", None)
    if not n_out:
        raise ParameterError("n_out is not set and dls.c is unknown; pass n_out=<number of classes>")
    if isinstance(arch, str):  # a network made for audio, named: MusiCNN or a PANNs CNN
        name = arch.lower()
        if name not in ("musicnn", "vgg") and name not in PANNS_ARCHS:
            raise ParameterError(
                f"unknown arch {arch!r}: pass a torchvision builder (resnet18, ...), 'musicnn', 'vgg', or one of the "
                f"PANNs names {sorted(PANNS_ARCHS)}"
            )
        if front_end is not None:
            takes = {
                "musicnn": "MusiCNN takes the loaders' 96-mel log-mels",
                "vgg": "MusicVGG takes 96-mel patches",
            }.get(name, "a PANNs network takes the loaders' mel_transforms('panns')")
            raise ParameterError(f"front_end= is for the ImageNet CNNs; {takes}")
        if name in ("musicnn", "vgg"):
            model, freeze = _musicnn_learner(
                dls, n_out, pretrained=pretrained, weights=weights, vgg=name == "vgg", **kwargs
            )
            split = musicnn_splitter
        else:
            model, weights = _panns_learner(dls, arch, n_out, pretrained=pretrained, weights=weights, **kwargs)
            freeze, split = weights is not None, panns_splitter
    else:
        meta = model_meta.get(arch, _DEFAULT_META)
        front = None
        if front_end is not None:
            front = front_end if isinstance(front_end, AudioFrontEnd) else AudioFrontEnd(front_end)
            front.setup(dls.train)
        model = create_audio_model(
            arch, n_out, _input_channels(dls, front), pretrained=pretrained, weights=weights, **kwargs
        )
        split = meta["split"]
        if front is not None:
            model, split = nn.Sequential(front, model), _FrontEndSplitter(split)
            model.register_forward_hook(_plain_output)
        freeze = pretrained or weights is not None
    learn = AudioLearner(
        dls,
        model,
        loss_func=loss_func,
        opt_func=opt_func,
        lr=lr,
        cbs=cbs,
        metrics=metrics,
        splitter=splitter or split,
        path=path,
        model_dir=model_dir,
    )
    if freeze:
        learn.freeze()
    return learn


def _plain_output(module, args, output):
    """Forward hook of a model with the front-end inside: its class scores are a plain tensor, not the
    ``TensorSpectrogram`` type that torch carries from the front-end's output through the CNN."""
    return output.as_subclass(torch.Tensor) if isinstance(output, TensorSpectrogram) else output


def create_cnn(data, arch=None, pretrained: bool = True, **kwargs) -> AudioLearner:
    """The seed's name for ``audio_learner``: ``learn = create_cnn(data, models.resnet18, metrics=accuracy)``.

    Examples:
        >>> learn = create_cnn(dls, models.resnet18, pretrained=False, metrics=accuracy)
        >>> type(learn).__name__, learn.dls.c
        ('AudioLearner', 2)
    """
    return audio_learner(data, arch, pretrained=pretrained, **kwargs)


@dataclass
class CrossValidation:
    """What ``cross_validate`` returns.

    Attributes:
        table: one row per fold: ``fold``, ``valid_loss`` and each metric of the learners.
        metric: the metric summarised (the learners' first).

    Examples:
        >>> cv = CrossValidation(pd.DataFrame({"fold": [1, 2], "valid_loss": [0.3, 0.5], "accuracy": [0.9, 0.8]}),
        ...                      "accuracy")
        >>> cv
        accuracy 0.8500 ± 0.0707 over 2 folds
    """

    table: pd.DataFrame
    metric: str

    @property
    def mean(self) -> float:
        """The metric's mean over the folds."""
        return float(self.table[self.metric].mean())

    @property
    def std(self) -> float:
        """The metric's standard deviation over the folds (sample, ``ddof=1``; 0 for one fold)."""
        return float(self.table[self.metric].std(ddof=1)) if len(self.table) > 1 else 0.0

    def __repr__(self) -> str:
        return f"{self.metric} {self.mean:.4f} ± {self.std:.4f} over {len(self.table)} folds"


def cross_validate(make_dls, make_learner, train, folds) -> CrossValidation:
    """Train and score one learner per fold, the way data sets with official folds (ESC-50, UrbanSound8K) are
    reported: the mean and spread of the validation metric over the folds, each fold validated once by a model that
    never saw it.

    Args:
        make_dls: ``fold -> DataLoaders`` validating on that fold, e.g.
            ``lambda k: AudioDataLoaders.from_esc50(root, fold=k, batch_tfms=mel_transforms())``.
        make_learner: ``DataLoaders -> Learner`` with at least one metric, e.g.
            ``lambda dls: audio_learner(dls, resnet18, metrics=accuracy)``.
        train: ``Learner -> None``, e.g. ``lambda learn: learn.fine_tune(5)``.
        folds: the folds, e.g. ``ESC50_FOLDS``.

    Returns:
        ``CrossValidation``: the per-fold ``table``, and ``mean`` and ``std`` of the first metric.

    Raises:
        ParameterError: no folds, or a learner without a metric.

    Examples:
        >>> cv = cross_validate(
        ...     lambda k: AudioDataLoaders.from_esc50("esc50", fold=k, bs=2, batch_tfms=mel_transforms()),
        ...     lambda dls: audio_learner(dls, resnet18, pretrained=False, metrics=accuracy),
        ...     lambda learn: None,                    # e.g. lambda learn: learn.fine_tune(5)
        ...     [1, 2])                                # e.g. ESC50_FOLDS
        >>> list(cv.table.columns), list(cv.table.fold), 0 <= cv.mean <= 1
        (['fold', 'valid_loss', 'accuracy'], [1, 2], True)
    """
    folds = list(folds)
    if not folds:
        raise ParameterError("cross_validate got no folds")
    rows, metric = [], None
    for fold in folds:
        learn = make_learner(make_dls(fold))
        if not learn.metrics:
            raise ParameterError("cross_validate scores the learners' metrics: build them with metrics=[accuracy]")
        train(learn)
        with learn.no_bar():
            loss, *values = learn.validate()
        names = [m.name for m in learn.metrics]
        metric = metric or names[0]
        rows.append({"fold": fold, "valid_loss": float(loss), **{n: float(v) for n, v in zip(names, values)}})
    return CrossValidation(pd.DataFrame(rows), metric)
