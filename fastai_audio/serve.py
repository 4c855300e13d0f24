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
import soundfile as sf

from ._read import read_array
from .errors import AudioFileError, ParameterError

__all__ = ["AudioTooLongError", "OnnxClassifier", "decode_bytes", "resample_np"]

_WIDTH, _ROLLOFF = 6, 0.99  # torchaudio.transforms.Resample's defaults (sinc_interp_hann), which the loaders use


@functools.lru_cache(maxsize=32)
def _sinc_kernel(orig: int, new: int) -> tuple[np.ndarray, int]:
    """torchaudio's windowed-sinc resampling kernel for the reduced rate pair, in float32 as it computes it."""
    base = np.float32(min(orig, new) * _ROLLOFF)
    width = math.ceil(_WIDTH * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float32)[None, :] / np.float32(orig)
    t = np.arange(0, -new, -1, dtype=np.float32)[:, None] / np.float32(new) + idx
    t = np.clip(t * base, -_WIDTH, _WIDTH).astype(np.float32)
    window = np.cos(t * np.float32(math.pi / _WIDTH / 2)) ** 2
    t = t * np.float32(math.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, np.float32(1.0), np.sin(t) / t)
    return (kernel * window * (base / np.float32(orig))).astype(np.float32), width


def resample_np(wav: np.ndarray, orig_sample_rate: int, sample_rate: int) -> np.ndarray:
    """Resample ``(..., samples)`` float32 audio as ``fastai_audio.io.resample`` does (torchaudio's kernel), in numpy.

    Returns:
        ``(..., ceil(samples * sample_rate / orig_sample_rate))`` float32.

    Examples:
        >>> resample_np(np.zeros((1, 44100), np.float32), 44100, 16000).shape
        (1, 16000)
    """
    if orig_sample_rate == sample_rate:
        return wav
    g = math.gcd(int(orig_sample_rate), int(sample_rate))
    orig, new = int(orig_sample_rate) // g, int(sample_rate) // g
    kernel, width = _sinc_kernel(orig, new)
    lead, n = wav.shape[:-1], wav.shape[-1]
    flat = np.pad(wav.reshape(-1, n).astype(np.float32), ((0, 0), (width, width + orig)))
    frames = np.lib.stride_tricks.sliding_window_view(flat, kernel.shape[1], axis=-1)[:, ::orig]  # (B, F, K)
    out = np.einsum("bfk,nk->bfn", frames, kernel, optimize=True).reshape(flat.shape[0], -1)
    return out[:, : math.ceil(new * n / orig)].reshape(*lead, -1).astype(np.float32)


class AudioTooLongError(AudioFileError):
    """A recording longer than the limit it was decoded under (its header says so; nothing was decoded)."""


def decode_bytes(data: bytes, name: str = "the audio", max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """The bytes of an audio file in any format soundfile reads -> float32 ``(channels, samples)`` and its rate.

    Args:
        data: the file's bytes.
        name: what error messages call it.
        max_seconds: refuse, from the header and before decoding, a recording longer than this.

    Raises:
        AudioFileError: empty, not audio, truncated before any sample, or a rate or channel count out of range;
            ``AudioTooLongError`` (a subclass) past ``max_seconds``.

    Examples:
        >>> wav, rate = decode_bytes(Path("note.wav").read_bytes())
        >>> wav.shape, rate
        ((1, 64000), 16000)
    """
    import io

    if not data:
        raise AudioFileError(name, "is empty (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels = int(f.samplerate), int(f.channels)
            if not 1 <= rate <= 768000 or not 1 <= channels <= 64:
                raise AudioFileError(name, f"has an unusable format: {rate} Hz, {channels} channels")
            if max_seconds is not None and f.frames / rate > max_seconds:
                raise AudioTooLongError(name, f"is {f.frames / rate:.1f} s long, more than the limit of "
                                              f"{max_seconds:g} s")  # fmt: skip
            wav = read_array(f).T
    except AudioFileError:
        raise
    except Exception as err:  # noqa: BLE001 - libsndfile reports broken input through several types
        raise AudioFileError(name, f"is not audio soundfile can read, or is truncated ({err})") from None
    if not wav.shape[-1]:
        raise AudioFileError(name, "holds no samples (truncated, or an empty recording)")
    return np.ascontiguousarray(wav), rate


class OnnxClassifier:
    """An exported model (``learn.export_onnx``) with the loaders' audio preparation, without torch or fastai.

    Args:
        path: the ``.onnx`` file.
        providers: ONNX Runtime execution providers (default: CPU).
        threads: intra-op threads (default: ONNX Runtime's choice).

    Attributes:
        labels, sample_rate, duration (``None``: whole clips), multi_label, threshold, pad_mode: from the metadata.

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
        self.session = ort.InferenceSession(str(self.path), options, providers=providers or ["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if "labels" not in meta or "sample_rate" not in meta:
            raise AudioFileError(self.path, "has no fastai_audio metadata (labels, sample_rate): export it with "
                                 "learn.export_onnx()")  # fmt: skip
        self.labels = json.loads(meta["labels"])
        self.sample_rate = int(meta["sample_rate"])
        self.duration = float(meta["duration"]) if meta.get("duration") else None
        self.multi_label = meta.get("multi_label") == "true"
        self.threshold = float(meta["threshold"]) if meta.get("threshold") else 0.5
        self.pad_mode = meta.get("pad_mode") or "zeros"

    # -- preparing audio as the loaders do --------------------------------------------------------------------

    @property
    def _target(self) -> int | None:
        return None if self.duration is None else int(round(self.duration * self.sample_rate))

    def _read(self, path: Path, whole: bool = False) -> tuple[np.ndarray, int]:
        """Decode (only the centred window a clip needs, as ``OpenAudio`` reads it, unless ``whole``) ->
        ``(channels, n)``, rate."""
        try:
            with sf.SoundFile(str(path)) as f:
                rate, total = int(f.samplerate), f.frames
                start, frames = 0, -1
                if self._target is not None and not whole:
                    need = math.ceil(self._target * rate / self.sample_rate)
                    if total > need:
                        start, frames = (total - need) // 2, need
                if start:
                    f.seek(start)
                wav = read_array(f, frames).T
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            raise AudioFileError(path, f"cannot be decoded ({err}); check it with `fastai-audio check`") from None
        if not wav.shape[-1]:
            raise AudioFileError(path, "holds no samples")
        return np.ascontiguousarray(wav), rate

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
            start = (len(x) - n) // 2
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
        df = pd.DataFrame({"path": [str(f) for f in files], "prediction": [self.labels[i] for i in best],
                           "probability": probs.max(1)})  # fmt: skip
        for i, c in enumerate(self.labels):
            df[str(c)] = probs[:, i]
        return df

    def predict_windows(self, item, *, window: float | None = None, hop: float | None = None,
                        sample_rate: int | None = None, aggregate: str = "mean", bs: int = 64) -> dict:  # fmt: skip
        """Windows over a long recording, as ``fastai_audio.inference.predict_windows``: a dict with ``starts``
        (s), ``window``, ``duration``, ``probs`` ``(windows, classes)``, ``clip_probs`` and ``label``."""
        window = window if window is not None else self.duration
        if window is None:
            raise ParameterError("the model was trained on whole clips (duration=None): pass window=<seconds>")
        hop = hop if hop is not None else window / 2
        if window <= 0 or hop <= 0 or aggregate not in ("mean", "max"):
            raise ParameterError(f"window and hop must be > 0 and aggregate 'mean' or 'max', got {window}, {hop}, "
                                 f"{aggregate!r}")  # fmt: skip
        x = self._mono(item, sample_rate, whole=True)
        sr, n_win = self.sample_rate, int(round(window * self.sample_rate))
        n_windows = 1 if len(x) <= n_win else math.ceil((len(x) - n_win) / (hop * sr)) + 1
        starts = np.array([min(round(i * hop * sr), max(0, len(x) - 1)) for i in range(n_windows)])
        clips = np.stack([np.pad(x[s : s + n_win], (0, max(0, n_win - len(x[s : s + n_win])))) for s in starts])
        probs = np.concatenate([self.probabilities(clips[s : s + bs]) for s in range(0, len(clips), bs)])
        clip_probs = probs.mean(0) if aggregate == "mean" else probs.max(0)
        return {"starts": starts / sr, "window": n_win / sr, "duration": len(x) / sr, "probs": probs,
                "clip_probs": clip_probs, "label": self.labels[int(clip_probs.argmax())]}  # fmt: skip
