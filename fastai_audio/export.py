"""Export a trained learner as one ONNX graph: raw audio in, class probabilities out, the spectrogram inside.

The graph takes a float32 waveform batch ``(batch, samples)`` at the model's sample rate (both axes dynamic) and
runs, in order, the spectral transforms the model was trained with (from the loaders' batch transforms, or from
the model itself with ``audio_learner(front_end=...)``: STFT/mel or CQT, decibels, the stored normalisation
statistics, a trainable front-end's learned weights), the CNN, and a softmax (a sigmoid for multi-label models).
Training-only augmentations are left out, as they are at inference. What cannot be exported is refused at export
time with an error naming it; the exported graph is checked against the model before the file is kept.

Needs the ``serve`` extra: ``pip install "fastai_audio[serve]"`` (onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .atomic import atomic_file
from .audio_config import AudioConfig
from .errors import ParameterError
from .transforms.item import audio_config_of
from .transforms.spectral import AudioFrontEnd, SpectralTransform, spectral_steps

__all__ = ["InferenceGraph", "export_onnx"]

#: The largest difference allowed between the exported graph's probabilities and the model's, checked at export.
TOLERANCE = 1e-4


class InferenceGraph(nn.Sequential):
    """What ``export_onnx`` exports: ``Sequential(front_end, network, softmax)``, ``(batch, samples)`` waveforms ->
    ``(batch, classes)`` probabilities.

    Args:
        steps: the spectral steps (``MelSpectrogram``, ``AmplitudeToDB``, ``SpecNormalize``...), in order: they
            become the ``AudioFrontEnd`` ``graph[0]``.
        model: the network that takes their output (``graph[1]``).
        multi_label: a sigmoid per class instead of a softmax (``graph[2]``).

    Examples:
        >>> graph = InferenceGraph.from_learner(learn)
        >>> graph(torch.zeros(2, 16000)).shape            # two clips of 1 s at 16 kHz, two classes
        torch.Size([2, 2])
    """

    def __init__(self, steps: list, model: nn.Module, multi_label: bool = False):
        last = nn.Sigmoid() if multi_label else nn.Softmax(dim=-1)
        super().__init__(AudioFrontEnd(steps), model, last)
        self.multi_label = multi_label

    @property
    def front_end(self) -> AudioFrontEnd:
        return self[0]

    @property
    def model(self) -> nn.Module:
        return self[1]

    @classmethod
    def from_learner(cls, learn) -> InferenceGraph:
        """The learner's inference pipeline after decoding: CPU copies of its spectral steps and its network."""
        model = copy.deepcopy(learn.model).cpu().eval()
        steps = []
        for t in getattr(getattr(learn.dls, "after_batch", None), "fs", []):
            if isinstance(t, SpectralTransform):
                steps += spectral_steps([copy.deepcopy(t.module)])
            elif getattr(t, "split_idx", None) == 0:
                continue  # a training-only augmentation: not run at inference
            else:
                raise ParameterError(
                    f"{type(t).__name__} in the batch transforms cannot be exported: only the spectral steps "
                    "(Spectrogram, MelSpectrogram, CQT, AmplitudeToDB, MFCC, Delta, SpecNormalize) and training-only "
                    "augmentations are supported; move its work into the model or drop it"
                )
        if isinstance(model, nn.Sequential) and len(model) == 2 and isinstance(model[0], AudioFrontEnd):
            steps += list(model[0])
            model = model[1]
        if not steps:
            raise ParameterError(
                "the learner computes no spectrogram (no spectral batch_tfms, no front_end=): the "
                "exported graph must take raw audio"
            )
        return cls([step.cpu() for step in steps], model, multi_label=_is_multi_label(learn))


def _is_multi_label(learn) -> bool:
    from fastai.losses import BCEWithLogitsLossFlat

    return isinstance(learn.loss_func, (BCEWithLogitsLossFlat, nn.BCEWithLogitsLoss))


def _audio_config(learn) -> AudioConfig:
    config = audio_config_of(getattr(learn.dls.valid_ds, "template", None) or learn.dls.valid_ds)
    if config is None or config.sample_rate is None:
        raise ParameterError(
            "the learner's loaders fix no sample rate (AudioBlock(sample_rate=None)): the exported "
            "graph needs one rate; retrain with sample_rate=<Hz>"
        )
    if not config.mono:
        raise ParameterError(
            "export_onnx supports mono models (the graph takes (batch, samples)); this one was trained with mono=False"
        )
    return config


def export_onnx(learn, path, *, opset: int = 18, check: bool = True) -> Path:
    """Write ``learn``'s whole inference pipeline, spectrogram included, as one ONNX graph.

    Input ``waveform``: float32 ``(batch, samples)`` at the model's sample rate, mono, both axes dynamic (the
    runtime crops or pads to the training ``duration`` as the loaders do). Output ``probabilities``: ``(batch,
    classes)``, softmax, or sigmoid for multi-label models. The ONNX metadata holds ``labels`` (JSON),
    ``audio_config`` (the loaders' ``AudioConfig`` as JSON; also as ``sample_rate``, ``duration`` and ``pad_mode``
    for runtimes of fastai_audio 0.1), ``multi_label``, ``threshold`` and the ``fastai_audio_version``.

    Args:
        learn: a trained ``AudioLearner`` (or one loaded with ``load_learner``).
        path: the ``.onnx`` file to write.
        opset: the ONNX opset (STFT needs 17 or later).
        check: run the graph with ONNX Runtime on random audio and refuse (deleting the file) if its
            probabilities differ from the model's by more than ``TOLERANCE``.

    Returns:
        ``path``.

    Raises:
        ParameterError: a transform that cannot be exported (named), a model without a fixed sample rate or with
            several channels, or a graph that does not match the model.
        ImportError: the ``serve`` extra is not installed.

    Examples:
        >>> path = export_onnx(learn, "model.onnx")
        >>> import onnxruntime as ort
        >>> session = ort.InferenceSession(str(path))
        >>> session.run(None, {"waveform": np.zeros((3, 16000), np.float32)})[0].shape
        (3, 2)
    """
    try:
        import onnx  # noqa: F401  (the exporter needs it: say so before any work)
    except ImportError as err:
        raise ImportError(
            "export_onnx needs onnx, onnxruntime and onnxscript: pip install 'fastai_audio[serve]'"
        ) from err
    path = Path(path)
    config = _audio_config(learn)
    rate, duration = config.sample_rate, config.duration
    graph = InferenceGraph.from_learner(learn).eval()
    shortest = 1 + max([getattr(t, "n_fft", 0) // 2 for t in graph.front_end] + [0])
    # a network that pools its input down needs some frames (PANNs: 16 or 32): as many samples as they take
    hop = next((t.hop_length for t in graph.front_end if getattr(t, "hop_length", None)), 1)
    shortest = max(shortest, (getattr(graph.model, "min_frames", 1) - 1) * hop)
    example = torch.randn(2, int(rate * (duration or 1.0)), generator=torch.Generator().manual_seed(0)) * 0.1
    dims = (  # the graph's one input, named "waveform" in the ONNX file
        {
            0: torch.export.Dim("batch", min=1, max=4096),
            1: torch.export.Dim("samples", min=max(shortest, 2), max=10**8),
        },
    )
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # (the exporter prints its progress)
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            dynamic_shapes=dims,
            opset_version=opset,
            input_names=["waveform"],
            output_names=["probabilities"],
            verbose=False,
        )
    with atomic_file(path, "ONNX model") as tmp:  # a failure leaves the model that was there before untouched
        _write(program, tmp, learn, graph, config, example, check)
    return path


def _write(program, path: Path, learn, graph: InferenceGraph, config: AudioConfig, example: torch.Tensor, check: bool):
    """The exported program with fastai_audio's metadata as the ONNX file ``path`` (checked against the model)."""
    import onnx

    rate, duration = config.sample_rate, config.duration
    program.save(str(path))
    proto = onnx.load(str(path))
    loss = learn.loss_func
    meta = {
        "labels": json.dumps([str(v) for v in learn.dls.vocab]),
        "sample_rate": str(rate),
        "duration": "" if duration is None else str(duration),
        "multi_label": str(graph.multi_label).lower(),
        "threshold": str(getattr(loss, "thresh", 0.5)) if graph.multi_label else "",
        "pad_mode": config.pad_mode,
        "audio_config": config.to_json(),
        "fastai_audio_version": __version__,
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    if check:
        _check(graph, path, example)


def _check(graph: InferenceGraph, path: Path, example: torch.Tensor):
    """The exported file against the model on two lengths; a mismatch deletes the file and raises."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for x in (example, example[:1, : max(example.shape[1] * 3 // 4, 2)]):
        with torch.no_grad():
            want = graph(x).numpy()
        got = session.run(None, {"waveform": x.numpy().astype(np.float32)})[0]
        diff = float(np.abs(got - want).max())
        if not diff <= TOLERANCE:
            path.unlink(missing_ok=True)
            raise ParameterError(
                f"the exported graph's probabilities differ from the model's by {diff:.2e} (more "
                f"than {TOLERANCE}) for input {tuple(x.shape)}: not written; please report it with "
                "the model's transforms"
            )
