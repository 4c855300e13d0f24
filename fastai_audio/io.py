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

from ._read import read_array
from ._validate import check_sample_rate, valid_audio
from .errors import AudioFileError, ParameterError
from .files import (
    AUDIO_EXTENSIONS,
    DECODE_ERRORS,
    INTEGER_SUBTYPES,
    AudioInfo,
    audio_info,
    decode_error,
    no_samples_error,
    non_finite_error,
)

__all__ = ["AudioInfo", "audio_info", "load_audio", "save_audio", "resample", "read_span", "AUDIO_EXTENSIONS"]


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
        AudioFileError: missing, empty, undecodable file, no samples, NaN/Inf samples, or offset past the end.
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


# Uncompressed PCM that is read as integers and scaled to float by torch: libsndfile's own integer-to-float loop
# takes ~3 ns a sample, torch's under 1 ns, so a 4 s 16-bit mono WAV decodes in ~0.26 ms instead of ~0.41 ms on
# the project's CPU machine (docs/performance.md). The result is bit-identical: libsndfile computes
# ``float(sample) * 2**-(bits - 1)`` too, and both steps are exact for 16-bit samples (float32 holds 24 bits) and
# round the same way for 32-bit ones. FLAC (whose subtypes are PCM_xx too) is bound by its decoder, and the other
# widths convert no faster: they keep the float read.
_INTEGER_READS = {"PCM_16": ("int16", 2.0**-15), "PCM_32": ("int32", 2.0**-31)}


def _read_frames(f: sf.SoundFile, frames: int, subtype: str) -> torch.Tensor:
    """``frames`` frames (-1: to the end) from the open file of ``subtype`` (``f.subtype``, which soundfile looks up
    anew at each access) as a contiguous float32 ``(channels, frames)`` tensor, with exactly the values of
    ``f.read(frames, dtype='float32')``."""
    integer = _INTEGER_READS.get(subtype)
    if integer is None or f.format == "FLAC":
        return torch.from_numpy(np.ascontiguousarray(read_array(f, frames, "float32").T))
    dtype, scale = integer
    data = torch.from_numpy(read_array(f, frames, dtype)).T
    return torch.mul(data, scale, out=torch.empty(data.shape, dtype=torch.float32))


def read_span(path, span=None) -> tuple[torch.Tensor, int]:
    """Decode part of a file at its own rate; ``span(total_frames, sample_rate) -> (start, frames)`` picks the part.

    The building block of ``load_audio`` and of the loaders' ``OpenAudio``, which choose what to read once the header
    is known (``frames=-1`` reads to the end). The common case costs one ``open``: the file is diagnosed (missing,
    a directory, unreadable, empty) only after libsndfile refuses it.

    Returns:
        ``(waveform, sample_rate)``: float32 ``(channels, frames)`` and the file's rate.

    Examples:
        >>> wav, sr = read_span("note.wav", lambda total, rate: (total - rate, rate))  # the last second
        >>> wav.shape, sr
        (torch.Size([1, 16000]), 16000)
    """
    try:
        with sf.SoundFile(str(path)) as f:
            native_sr, total = int(f.samplerate), f.frames
            start, frames = span(total, native_sr) if span is not None else (0, -1)
            if start:
                f.seek(start)
            subtype = f.subtype
            data = _read_frames(f, frames, subtype)
            integer_pcm = subtype in INTEGER_SUBTYPES
    except AudioFileError:
        raise
    except DECODE_ERRORS as err:
        raise decode_error(path, err) from None
    if data.shape[1] == 0:
        raise no_samples_error(path)
    if not integer_pcm and not torch.isfinite(data).all():  # integer samples are always finite (~15 us a clip)
        raise non_finite_error(path, int((~torch.isfinite(data)).sum()))
    return data, native_sr


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
    sf.write(str(path), x.T.numpy(), int(sample_rate), subtype=subtype, format=format)
    return path


@functools.lru_cache(maxsize=32)
def _resampler(orig: int, new: int, dtype: torch.dtype, device: str) -> torchaudio.transforms.Resample:
    # The windowed-sinc kernel depends only on the rate pair: build it once per (rates, dtype, device).
    return torchaudio.transforms.Resample(orig, new, dtype=dtype).to(device)


def resample(waveform: torch.Tensor, orig_sample_rate: int, sample_rate: int) -> torch.Tensor:
    """Band-limited (windowed-sinc) resampling along the last dimension, with kernels cached per rate pair.

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
    return _resampler(orig_sample_rate, sample_rate, plain.dtype, str(plain.device))(plain)
