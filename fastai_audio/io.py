"""Decoding audio into tensors, encoding tensors to files, and resampling.

With ``files`` (finding, inspecting and checking files, without torch), the only module that opens audio files. All
decoding goes through soundfile (libsndfile): WAV (PCM 8/16/24/32-bit, float32/64), FLAC, OGG/Vorbis, MP3 and
everything else ``soundfile.available_formats()`` lists. torchaudio is used for DSP (resampling) only.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from ._validate import check_sample_rate, valid_audio
from .atomic import atomic_file
from .decode import PCM_SCALE, decode_audio
from .errors import AudioFileError, ParameterError
from .files import AUDIO_EXTENSIONS, AudioInfo, audio_info
from .rates import resampled_length, resampling_pair

__all__ = [
    "AudioInfo",
    "audio_info",
    "load_audio",
    "save_audio",
    "resample",
    "read_span",
    "pcm_to_float",
    "AUDIO_EXTENSIONS",
]


def load_audio(
    path,
    sample_rate: int | None = None,
    mono: bool = False,
    offset: float = 0.0,
    duration: float | None = None,
) -> tuple[torch.Tensor, int]:
    """Decode an audio file to a float32 tensor of shape ``(channels, samples)`` in [-1, 1].

    Only the requested span (``offset`` .. ``offset + duration`` seconds) is read from disk.

    Args:
        path: audio file (WAV PCM 8/16/24/32-bit or float, FLAC, OGG/Vorbis, MP3, ... anything libsndfile reads).
        sample_rate: resample to this rate (Hz); ``None`` keeps the file's rate.
        mono: average all channels into one, giving shape ``(1, samples)``.
        offset: start reading this many seconds into the file (in the file's own time base).
        duration: read at most this many seconds; ``None`` reads to the end.

    Returns:
        ``(waveform, sample_rate)``: a float32 CPU tensor ``(channels, samples)`` and its rate in Hz.

    Raises:
        AudioFileError: missing file, offset past the end; the typed errors of ``fastai_audio.decode``
            (``EmptyAudioError``, ``UndecodableAudioError``, ``TruncatedAudioError``, ``NonFiniteAudioError``).
        ParameterError: a negative offset, a non-positive duration or sample rate.

    Examples:
        >>> x, sr = load_audio("note.flac", sample_rate=16000, mono=True, duration=4.0)
        >>> x.shape, x.dtype, sr
        (torch.Size([1, 64000]), torch.float32, 16000)
    """
    check_sample_rate(sample_rate, allow_none=True)
    if offset < 0:
        raise ParameterError(f"offset must be >= 0 seconds, got {offset!r}")
    if duration is not None and not duration > 0:
        raise ParameterError(f"duration must be > 0 seconds or None, got {duration!r}")

    def span(total: int, native_sr: int) -> tuple[int, int]:
        start = int(round(offset * native_sr))
        if start and start >= total:
            length = f"{total / native_sr:.3f} s long"
            raise AudioFileError(path, f"offset {offset} s is past the end of the file ({length})")
        return start, -1 if duration is None else max(1, int(round(duration * native_sr)))

    wav, native_sr = read_span(path, span)
    if mono and wav.shape[0] > 1:
        wav = wav.mean(dim=0, keepdim=True)
    if sample_rate is not None and sample_rate != native_sr:
        wav = resample(wav, native_sr, sample_rate)
    return wav, int(sample_rate or native_sr)


def pcm_to_float(samples: np.ndarray) -> torch.Tensor:
    """The decode core's ``(channels, frames)`` samples as a float32 tensor with exactly the values of libsndfile's
    float read: integers (``int16``/``int32``, from ``decode_audio(..., integer=True)``) are scaled by torch, which
    does it in under 1 ns a sample against libsndfile's ~3 ns (a 4 s 16-bit clip in ~0.26 ms instead of ~0.41 ms on
    the project's CPU machine); both steps are exact for 8/16/24-bit samples and round alike for 32-bit ones.

    Examples:
        >>> pcm_to_float(np.array([[-32768, 16384]], dtype=np.int16))
        tensor([[-1.0000,  0.5000]])
    """
    data = torch.from_numpy(samples)
    scale = PCM_SCALE.get(str(samples.dtype))
    if scale is None:
        return data
    return torch.mul(data, scale, out=torch.empty(data.shape, dtype=torch.float32))


def read_span(path, span=None) -> tuple[torch.Tensor, int]:
    """Decode part of a file at its own rate; ``span(total_frames, sample_rate) -> (start, frames)`` picks the part.

    The building block of ``load_audio`` and of the loaders' ``OpenAudio``, which choose what to read once the header
    is known (``frames=-1`` reads to the end); the reading is the decode core's (``fastai_audio.decode``).

    Returns:
        ``(waveform, sample_rate)``: float32 ``(channels, frames)`` and the file's rate.

    Examples:
        >>> wav, sr = read_span("note.wav", lambda total, rate: (total - rate, rate))  # the last second
        >>> wav.shape, sr
        (torch.Size([1, 16000]), 16000)
    """
    samples, rate = decode_audio(path, window=span, integer=True)
    return pcm_to_float(samples), rate


def save_audio(path, waveform, sample_rate: int, *, subtype: str | None = None, format: str | None = None) -> Path:
    """Encode a ``(channels, samples)`` or ``(samples,)`` float waveform to a file with soundfile.

    Args:
        path: destination; the format follows the extension unless ``format`` is given.
        waveform: tensor or array with values in [-1, 1] (PCM subtypes clip outside that range).
        sample_rate: rate in Hz.
        subtype: soundfile subtype such as ``'PCM_16'`` (the default for WAV), ``'PCM_24'``, ``'FLOAT'``.
        format: soundfile container name such as ``'WAV'``, ``'FLAC'``, ``'OGG'``.

    Returns:
        The path written.

    Examples:
        >>> save_audio("sine.flac", torch.sin(torch.arange(16000) * 0.1)[None], 16000).name
        'sine.flac'
    """
    check_sample_rate(sample_rate)
    x = torch.as_tensor(waveform).detach().cpu()
    valid_audio(x.float(), source=f"the waveform for {path}")
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ParameterError(f"waveform must be (channels, samples) or (samples,), got shape {tuple(x.shape)}")
    path = Path(path)
    with atomic_file(path, "audio file") as tmp:  # a failed write leaves the file that was there untouched
        sf.write(str(tmp), x.T.numpy(), int(sample_rate), subtype=subtype, format=format or _format_of(path))
    return path


def _format_of(path: Path) -> str | None:
    """The format soundfile would pick from ``path``'s extension (the temporary name keeps it, but say it)."""
    ext = path.suffix.lstrip(".").upper()
    return ext if ext in sf.available_formats() else None


@functools.lru_cache(maxsize=16)
def _resampler(orig: int, new: int, dtype: torch.dtype, device: str) -> torchaudio.transforms.Resample:
    # The windowed-sinc kernel depends only on the (reduced) rate pair: build it once per (pair, dtype, device). The
    # pair comes from rates.resampling_pair, so no kernel exceeds rates.MAX_KERNEL values (8 MB).
    return torchaudio.transforms.Resample(orig, new, dtype=dtype).to(device)


def resample(waveform: torch.Tensor, orig_sample_rate: int, sample_rate: int) -> torch.Tensor:
    """Band-limited (windowed-sinc) resampling along the last dimension, with kernels cached per rate pair.

    Memory is bounded whatever the rates: a pair whose kernel would be too large (rates prime to each other, from a
    corrupt header) is resampled through the closest ratio that fits (``fastai_audio.rates``), to the same length.

    Args:
        waveform: float tensor ``(..., samples)`` on any device.
        orig_sample_rate: its rate in Hz.
        sample_rate: the rate wanted, in Hz.

    Returns:
        Tensor ``(..., ceil(samples * sample_rate / orig_sample_rate))``, same dtype and device.

    Examples:
        >>> resample(torch.randn(2, 44100), 44100, 16000).shape
        torch.Size([2, 16000])
    """
    orig_sample_rate = check_sample_rate(orig_sample_rate, name="orig_sample_rate")
    sample_rate = check_sample_rate(sample_rate)
    if orig_sample_rate == sample_rate:
        return waveform
    if not waveform.is_floating_point():
        raise ParameterError(f"resample needs a floating point waveform, got {waveform.dtype}")
    plain = waveform.as_subclass(torch.Tensor)
    orig, new = resampling_pair(orig_sample_rate, sample_rate)
    out = _resampler(orig, new, plain.dtype, str(plain.device))(plain)
    n = resampled_length(plain.shape[-1], orig_sample_rate, sample_rate)
    if out.shape[-1] > n:
        out = out[..., :n]
    elif out.shape[-1] < n:
        out = torch.nn.functional.pad(out, (0, n - out.shape[-1]))
    return out
