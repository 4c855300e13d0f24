"""A runtime for exported models that needs neither PyTorch nor fastai: numpy, soundfile and ONNX Runtime.

``OnnxClassifier`` loads the graph ``export_onnx`` writes and prepares audio as the loaders do at validation time:
decode with soundfile (reading only the centred window a clip needs), downmix to mono, resample with the same
windowed-sinc kernel as the training pipeline (a numpy port of torchaudio's, so the numbers agree), and centre-crop
or pad to the training duration. ``import fastai_audio.serve`` imports no torch.

Install for a slim container: ``pip install --no-deps fastai_audio && pip install numpy soundfile onnxruntime``.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from .audio_config import AudioConfig, crop_offset
from .decode import decode_audio
from .errors import AudioFileError, AudioTooLongError, ParameterError
from .rates import LOWPASS_WIDTH, ROLLOFF, resampled_length, resampling_pair

__all__ = ["AudioTooLongError", "OnnxClassifier", "decode_bytes", "resample_np"]

#: The shortest window, the shortest hop and the longest window ``predict_windows`` takes (s), and the most windows
#: one call computes by default.
MIN_WINDOW_SECONDS, MIN_HOP_SECONDS, MAX_WINDOW_SECONDS, MAX_WINDOWS = 0.1, 0.005, 3600.0, 10_000


_BLOCK_VALUES = 1 << 21  # float32 values of the frames one step of resample_np multiplies (8 MB)


@functools.lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int) -> tuple[np.ndarray, int]:
    """torchaudio's windowed-sinc resampling kernel for the reduced rate pair, in float32 as it computes it."""
    base = np.float32(min(orig, new) * ROLLOFF)
    width = math.ceil(LOWPASS_WIDTH * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float32)[None, :] / np.float32(orig)
    t = np.arange(0, -new, -1, dtype=np.float32)[:, None] / np.float32(new) + idx
    t = np.clip(t * base, -LOWPASS_WIDTH, LOWPASS_WIDTH).astype(np.float32)
    window = np.cos(t * np.float32(math.pi / LOWPASS_WIDTH / 2)) ** 2
    t = t * np.float32(math.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, np.float32(1.0), np.sin(t) / t)
    return (kernel * window * (base / np.float32(orig))).astype(np.float32), width


def resample_np(wav: np.ndarray, orig_sample_rate: int, sample_rate: int) -> np.ndarray:
    """Resample ``(..., samples)`` float32 audio as ``fastai_audio.io.resample`` does (torchaudio's kernel), in numpy,
    with the same bound on the kernel's memory for any rate pair (``fastai_audio.rates``).

    Returns:
        ``(..., ceil(samples * sample_rate / orig_sample_rate))`` float32.

    Examples:
        >>> resample_np(np.zeros((1, 44100), np.float32), 44100, 16000).shape
        (1, 16000)
    """
    if orig_sample_rate == sample_rate:
        return wav
    orig, new = resampling_pair(orig_sample_rate, sample_rate)
    lead, n = wav.shape[:-1], wav.shape[-1]
    if orig == new:  # rates within the closest ratio's error of each other: as torchaudio, no filtering
        out = wav.reshape(-1, n).astype(np.float32)
    else:
        kernel, width = _sinc_kernel(orig, new)
        flat = np.pad(wav.reshape(-1, n).astype(np.float32), ((0, 0), (width, width + orig)))
        frames = np.lib.stride_tricks.sliding_window_view(flat, kernel.shape[1], axis=-1)[:, ::orig]  # (B, F, K)
        out = np.empty((flat.shape[0], frames.shape[1], new), np.float32)
        # the product copies the strided frames it takes: a block of them at a time keeps that copy near 8 MB
        # (all of them at once would be K / orig, up to ~14, times the clip)
        step = max(1, _BLOCK_VALUES // (kernel.shape[1] * flat.shape[0]))
        for f in range(0, frames.shape[1], step):
            np.einsum("bfk,nk->bfn", frames[:, f : f + step], kernel, out=out[:, f : f + step], optimize=True)
        out = out.reshape(flat.shape[0], -1)
    target = resampled_length(n, orig_sample_rate, sample_rate)
    out = out[:, : min(target, math.ceil(new * n / orig))]
    if out.shape[-1] < target:
        out = np.pad(out, ((0, 0), (0, target - out.shape[-1])))
    return out.reshape(*lead, -1).astype(np.float32)


def decode_bytes(
    data: bytes, name: str = "the audio", max_seconds: float | None = None, max_samples: int | None = None
) -> tuple[np.ndarray, int]:
    """The bytes of an audio file in any format soundfile reads -> float32 ``(channels, samples)`` and its rate.

    The decode core's ``decode_audio`` (``fastai_audio.decode``) on bytes: the loaders' reader and errors.

    Args:
        data: the file's bytes.
        name: what error messages call it.
        max_seconds: refuse, from the header and before decoding, a recording longer than this.
        max_samples: refuse one holding more samples than this, all channels counted.

    Raises:
        AudioFileError: the typed errors of ``fastai_audio.decode``: ``EmptyAudioError``,
            ``UndecodableAudioError`` (``ImpossibleFormatError``), ``TruncatedAudioError``,
            ``NonFiniteAudioError``, ``AudioTooLongError``.

    Examples:
        >>> wav, rate = decode_bytes(Path("note.wav").read_bytes())
        >>> wav.shape, rate
        ((1, 64000), 16000)
    """
    return decode_audio(bytes(data), name=name, max_seconds=max_seconds, max_samples=max_samples)


class OnnxClassifier:
    """An exported model (``learn.export_onnx``) with the loaders' audio preparation, without torch or fastai.

    Args:
        path: the ``.onnx`` file.
        providers: ONNX Runtime execution providers (default: CPU).
        threads: intra-op threads (default: ONNX Runtime's choice).

    Attributes:
        labels, config (the loaders' ``AudioConfig``: ``sample_rate``, ``duration``, ``pad_mode`` read it),
        multi_label, threshold: from the metadata, each field checked when the model is loaded.

    Examples:
        >>> clf = OnnxClassifier(learn.export_onnx("model.onnx"))
        >>> label, index, probs = clf.predict("note.wav")
        >>> label == learn.predict("note.wav")[0], probs.shape
        (True, (2,))
    """

    def __init__(self, path, *, providers=None, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise AudioFileError(self.path, "no such model file; pass the .onnx written by learn.export_onnx()")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as err:  # noqa: BLE001 - ONNX Runtime reports a bad file through its own exception types
            raise AudioFileError(self.path, f"is not an ONNX model ONNX Runtime can load ({err})") from None
        outputs = self.session.get_outputs()[0].shape
        width = outputs[-1] if outputs and isinstance(outputs[-1], int) else None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.labels, self.config, self.multi_label, self.threshold = _read_metadata(meta, width)
        except ParameterError as err:
            raise AudioFileError(
                self.path, f"has unusable fastai_audio metadata: {err}; export it again with learn.export_onnx()"
            ) from None

    sample_rate = property(lambda self: self.config.sample_rate, doc="The model's rate (Hz).")
    duration = property(lambda self: self.config.duration, doc="Seconds per clip, or None for whole clips.")
    pad_mode = property(lambda self: self.config.pad_mode, doc="How clips shorter than ``duration`` are padded.")

    # -- preparing audio as the loaders do --------------------------------------------------------------------

    @property
    def _target(self) -> int | None:
        return self.config.num_samples()

    def _read(self, path: Path, whole: bool = False) -> tuple[np.ndarray, int]:
        """Decode (only the centred window a clip needs, as the loaders read it, unless ``whole``) ->
        ``(channels, n)``, rate."""
        return decode_audio(path, window=None if whole else self.config.window)

    def _mono(self, item, sample_rate: int | None, whole: bool) -> np.ndarray:
        """A path, the bytes of a file, or an array with its ``sample_rate`` -> ``(samples,)`` mono at the model's
        rate (for a path, only the centred window a clip needs unless ``whole``)."""
        if isinstance(item, (str, Path)):
            wav, rate = self._read(Path(item), whole)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            wav, rate = decode_bytes(bytes(item))
        else:
            if sample_rate is None:
                raise ParameterError("predicting an array needs its rate: pass sample_rate=<Hz>")
            wav, rate = np.asarray(item, dtype=np.float32), int(sample_rate)
            wav = wav[None] if wav.ndim == 1 else wav
            if wav.ndim != 2 or not wav.shape[-1]:
                raise ParameterError(f"expected audio of shape (samples,) or (channels, samples), got {wav.shape}")
        if not np.isfinite(wav).all():
            raise ParameterError("the audio holds NaN or infinite samples")
        mono = wav if wav.shape[0] == 1 else wav.mean(axis=0, keepdims=True, dtype=np.float32)
        return resample_np(mono, rate, self.sample_rate)[0]

    def prepare(self, item, sample_rate: int | None = None) -> np.ndarray:
        """A file path, the bytes of a file, or an array ``(samples,)``/``(channels, samples)`` with its
        ``sample_rate`` -> the model's input ``(samples,)``: mono, at the model's rate, centre-cropped or padded to
        its duration."""
        x = self._mono(item, sample_rate, whole=False)
        n = self._target
        if n is None or len(x) == n:
            return x
        if len(x) > n:
            start = crop_offset(len(x), n)  # centred, as the loaders' validation crop
            return x[start : start + n]
        if self.pad_mode == "repeat":
            return np.tile(x, -(-n // len(x)))[:n]
        return np.pad(x, (0, n - len(x)))

    # -- predicting -------------------------------------------------------------------------------------------

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """The graph on a ready batch ``(batch, samples)`` -> ``(batch, classes)``."""
        return self.session.run(None, {"waveform": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def _decode(self, probs: np.ndarray):
        if self.multi_label:
            chosen = np.flatnonzero(probs >= self.threshold)
            return [self.labels[i] for i in chosen], chosen
        i = int(probs.argmax())
        return self.labels[i], i

    def predict(self, item, sample_rate: int | None = None):
        """``(label, index, probabilities)`` for one clip, as ``learn.predict`` gives them (labels and indices lists
        for a multi-label model)."""
        probs = self.probabilities(self.prepare(item, sample_rate)[None])[0]
        return (*self._decode(probs), probs)

    def predict_files(self, files, bs: int = 64):
        """One row per file, as ``fastai_audio.inference.predict_files``: a DataFrame with ``path``,
        ``prediction``, ``probability`` and one column per class."""
        import pandas as pd

        files = [Path(f) for f in files]
        if not files:
            raise ParameterError("predict_files needs at least one file")
        probs = []
        for s in range(0, len(files), bs):
            clips = [self.prepare(f) for f in files[s : s + bs]]
            if self._target is None:  # whole clips of different lengths: one at a time (no padding changes them)
                probs += [self.probabilities(c[None])[0] for c in clips]
            else:
                probs += list(self.probabilities(np.stack(clips)))
        probs = np.stack(probs)
        best = probs.argmax(1)
        df = pd.DataFrame(
            {"path": [str(f) for f in files], "prediction": [self.labels[i] for i in best], "probability": probs.max(1)}
        )
        for i, c in enumerate(self.labels):
            df[str(c)] = probs[:, i]
        return df

    def predict_windows(
        self,
        item,
        *,
        window: float | None = None,
        hop: float | None = None,
        sample_rate: int | None = None,
        aggregate: str = "mean",
        bs: int = 64,
        max_windows: int = MAX_WINDOWS,
    ) -> dict:
        """Windows over a long recording, as ``fastai_audio.inference.predict_windows``: a dict with ``starts``
        (s), ``window``, ``duration``, ``probs`` ``(windows, classes)``, ``clip_probs`` and ``label``.

        The cost is bounded whatever the arguments: ``window`` and ``hop`` must be finite, at least
        ``MIN_WINDOW_SECONDS`` and ``MIN_HOP_SECONDS``, the window at most ``MAX_WINDOW_SECONDS``; the recording
        may give at most ``max_windows`` windows, covering at most ``max_windows`` of the model's clips of audio
        (checked before any is made); windows are made ``bs`` (fewer for long windows: ~16 MB) at a time.

        Raises:
            ParameterError: an argument out of these bounds, naming it and the limit.
        """
        window = window if window is not None else self.duration
        if window is None:
            raise ParameterError("the model was trained on whole clips (duration=None): pass window=<seconds>")
        hop = hop if hop is not None else window / 2
        if aggregate not in ("mean", "max"):
            raise ParameterError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
        x = self._mono(item, sample_rate, whole=True)
        sr = self.sample_rate
        starts, n_win = window_starts(len(x), sr, window, hop, max_windows, clip_samples=self._target)
        bs = max(1, min(bs, 2 * _BLOCK_VALUES // n_win))  # windows made at a time: at most ~16 MB of them
        probs = []
        for s in range(0, len(starts), bs):
            clips = np.stack(
                [np.pad(x[i : i + n_win], (0, max(0, n_win - len(x[i : i + n_win])))) for i in starts[s : s + bs]]
            )
            try:
                probs.append(self.probabilities(clips))
            except Exception as err:  # noqa: BLE001 - ONNX Runtime's own exception types: the window does not fit
                raise ParameterError(
                    f"the model cannot take windows of {window:g} s ({type(err).__name__}); "
                    f"pass a window closer to its clips' {self.duration or 'length'} s"
                ) from None
        probs = np.concatenate(probs)
        clip_probs = probs.mean(0) if aggregate == "mean" else probs.max(0)
        return {
            "starts": starts / sr,
            "window": n_win / sr,
            "duration": len(x) / sr,
            "probs": probs,
            "clip_probs": clip_probs,
            "label": self.labels[int(clip_probs.argmax())],
        }


def window_starts(
    n_total: int,
    sample_rate: int,
    window: float,
    hop: float,
    max_windows: int = MAX_WINDOWS,
    clip_samples: int | None = None,
) -> tuple[np.ndarray, int]:
    """Where the windows over ``n_total`` samples start (samples, int64 ``(windows,)``) and their length: every
    ``hop`` s from 0 until one ends at or after the end (one window when the recording is shorter). ``window`` and
    ``hop`` are checked first (``check_windows``), and more than ``max_windows`` windows, or windows covering more
    audio than ``max_windows`` clips of ``clip_samples`` (the model's clip; default: a window), are refused before
    any start is computed.

    Examples:
        >>> starts, n = window_starts(5 * 16000, 16000, window=1.0, hop=0.5)
        >>> starts[:3].tolist(), len(starts), n
        ([0, 8000, 16000], 9, 16000)
    """
    check_windows(window, hop)
    n_win = int(round(window * sample_rate))
    n_windows = 1 if n_total <= n_win else math.ceil((n_total - n_win) / (hop * sample_rate)) + 1
    if n_windows > max_windows:
        least = (n_total - n_win) / sample_rate / (max_windows - 1) if max_windows > 1 else math.inf
        raise ParameterError(
            f"a {n_total / sample_rate:.1f} s recording with window={window:g} s and hop={hop:g} s "
            f"gives {n_windows} windows, more than the {max_windows} allowed: pass a hop of at "
            f"least {least:.3g} s"
        )
    budget = max_windows * (clip_samples or n_win)  # the audio all windows may cover
    if n_windows * n_win > budget:
        raise ParameterError(
            f"{n_windows} windows of {window:g} s would cover {n_windows * n_win / sample_rate:.0f} s of audio, more "
            f"than the {budget / sample_rate:.0f} s allowed ({max_windows} of the model's clips): pass a longer hop or "
            "a shorter window"
        )
    starts = np.minimum(np.round(np.arange(n_windows) * hop * sample_rate), max(0, n_total - 1)).astype(np.int64)
    return starts, n_win


def check_windows(window, hop):
    """Refuse a ``window`` or ``hop`` (seconds) that is not a finite number within the bounds above, naming it.

    Examples:
        >>> check_windows(4.0, 2.0)
        >>> check_windows(4.0, 1e-300)
        Traceback (most recent call last):
        ...
        fastai_audio.errors.ParameterError: hop must be a number of seconds from 0.005 to 3600, got 1e-300
    """
    for name, value, least in (("window", window, MIN_WINDOW_SECONDS), ("hop", hop, MIN_HOP_SECONDS)):
        ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not least <= value <= MAX_WINDOW_SECONDS:
            raise ParameterError(
                f"{name} must be a number of seconds from {least:g} to {MAX_WINDOW_SECONDS:g}, got {value!r}"
            )


def _read_metadata(meta: dict, width: int | None) -> tuple[list, AudioConfig, bool, float]:
    """``(labels, config, multi_label, threshold)`` from an exported model's metadata, every field checked; a
    ``ParameterError`` names the field and its value. ``width``: the model's number of outputs, when fixed."""
    if "labels" not in meta or not ("audio_config" in meta or "sample_rate" in meta):
        raise ParameterError("no labels and sample_rate: the model was not written by learn.export_onnx()")
    try:
        labels = json.loads(meta["labels"])
    except ValueError:
        labels = None
    if not isinstance(labels, list) or not labels or not all(isinstance(v, str) for v in labels):
        raise ParameterError(f"labels must be a JSON list of class names, got {meta['labels'][:200]!r}")
    if len(set(labels)) != len(labels):
        raise ParameterError(f"labels must be distinct, got {meta['labels'][:200]!r}")
    if width is not None and width != len(labels):
        raise ParameterError(f"labels name {len(labels)} classes but the model has {width} outputs")
    if "audio_config" in meta:
        config = AudioConfig.from_json(meta["audio_config"])
    else:  # written by fastai_audio 0.1: the fields one by one
        config = AudioConfig(
            _number(meta, "sample_rate", int),
            _number(meta, "duration", float, optional=True),
            True,
            meta.get("pad_mode") or "zeros",
        )
    flag = meta.get("multi_label", "false") or "false"
    if flag not in ("true", "false"):
        raise ParameterError(f"multi_label must be 'true' or 'false', got {flag[:50]!r}")
    threshold = _number(meta, "threshold", float, optional=True)
    threshold = 0.5 if threshold is None else threshold
    if not 0.0 < threshold < 1.0:
        raise ParameterError(f"threshold must lie between 0 and 1, got {threshold!r}")
    return labels, config, flag == "true", threshold


def _number(meta: dict, key: str, kind, optional: bool = False):
    text = meta.get(key) or ""
    if not text and optional:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ParameterError(f"{key} must be a number, got {text[:50]!r}") from None
    if not math.isfinite(value):
        raise ParameterError(f"{key} must be a finite number, got {text[:50]!r}")
    if kind is int and value != int(value):
        raise ParameterError(f"{key} must be an integer, got {text[:50]!r}")
    return kind(value)
