"""Data augmentation on the batch's device: waveforms before the front-end, spectrograms after it.

Every augmentation here is a batch transform (fastai ``Transform``) with the same rules:

- **training set only**: ``split_idx = 0``, so validation batches, ``get_preds``, ``predict`` and an exported model
  see clean audio;
- **one draw per item**: each clip gets its own parameters, and is augmented at all with probability ``p``;
- **draw, then apply**: ``draw(x)`` returns the parameters as tensors of shape ``(batch, ...)`` (a clip that is
  not augmented gets the identity value, e.g. a gain of 0 dB), ``apply(x, **params)`` is deterministic, so a test or
  a notebook can pin the draw; the last draw is kept in ``last_params``;
- **seedable**: with ``seed=None`` draws come from torch's default generator of the batch's device (seeded by
  fastai's ``set_seed``), with an int from the transform's own generator;
- **on the device**: parameters are drawn where the batch is, so nothing is copied between host and device (except
  ``PitchShift`` and ``TimeStretch``, which pick their kernels on the host, and ``AddBackground``, which copies its
  background clips to the device once);
- **picklable**: generators and cached audio are dropped when pickled, so ``learn.export()`` works and stays small.

Waveform augmentations (``order`` 10) run before the spectrogram (``MelSpectrogram`` has order 20); ``TimeWarp``
(65) and the spectrogram masks (70) run after ``SpecNormalize`` (60), where 0 is the mean, so a masked band carries no
information.
``audio_aug_tfms()`` returns a default recipe (see ``docs/augment.md``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fastai.callback.mixup import MixHandler
from fastai.torch_core import unsqueeze
from fastcore.foundation import L

from .._validate import check_choice, check_positive, check_sample_rate
from ..core import TensorAudio, TensorSpectrogram, _row_frequencies
from ..errors import AudioFileError, ParameterError
from .base import TypedTransform
from .spectral import _as_batch, _as_spec_batch

__all__ = [
    "AudioAugment",
    "RandomGain",
    "RandomShift",
    "PolarityInversion",
    "AddNoise",
    "AddBackground",
    "RandomLowpass",
    "RandomHighpass",
    "PitchShift",
    "TimeStretch",
    "FrequencyMask",
    "TimeMask",
    "TimeWarp",
    "AudioCutMix",
    "audio_aug_tfms",
]


def _check_range(name: str, low: float, high: float):
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ParameterError(f"{name}: the range ({low}, {high}) is empty or not finite; give min <= max")
    return float(low), float(high)


def _check_p(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ParameterError(f"p is the probability of augmenting a clip: it must be in [0, 1], got {p}")
    return float(p)


class AudioAugment(TypedTransform):
    """Base class: per-item random draws (``draw``) and a deterministic ``apply``, on the training set only.

    Subclasses implement ``_draw(x, n, device) -> dict`` (parameters for all ``n`` items; the base class then
    resets the items that are not augmented to ``identity``) and ``apply(x, **params)`` on a plain tensor.

    Args:
        p: probability that a clip is augmented.
        seed: an int for a private generator (reproducible whatever else uses torch's RNG); None for torch's.
    """

    split_idx = 0  # training set only
    order = 10
    accepts = (TensorAudio,)
    plain_tensors = True
    identity: dict = {}

    def __init__(self, p: float = 0.5, seed: int | None = None):
        super().__init__()
        self.p, self.seed = _check_p(p), seed
        self._generators, self.last_params = {}, None

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_generators={}, last_params=None)
        return state

    # -- randomness -------------------------------------------------------------------------------------------------
    def generator(self, device) -> torch.Generator | None:
        """The transform's generator on ``device`` (None: torch's default generator there)."""
        if self.seed is None:
            return None
        device = torch.device(device)
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(int(self.seed))
        return self._generators[device]

    def uniform(self, shape, low: float, high: float, device) -> torch.Tensor:
        """Uniform draws in ``[low, high)`` on ``device``."""
        u = torch.rand(shape, device=device, generator=self.generator(device))
        return low + (high - low) * u

    # -- draw and apply ---------------------------------------------------------------------------------------------
    def draw(self, x: torch.Tensor) -> dict:
        """Parameters for every item of ``x`` (the items not augmented, probability ``1 - p``, get the identity)."""
        n, device = x.shape[0], x.device
        params = self._draw(x, n, device)
        keep = self.uniform((n,), 0.0, 1.0, device) >= self.p
        for name, value in self.identity.items():
            shape = (n,) + (1,) * (params[name].ndim - 1)
            params[name] = torch.where(keep.view(shape), torch.as_tensor(value, dtype=params[name].dtype,
                                                                        device=device), params[name])  # fmt: skip
        return params

    def _draw(self, x, n: int, device) -> dict:
        raise NotImplementedError

    def apply(self, x: torch.Tensor, **params) -> torch.Tensor:
        """Apply the given parameters (one value per item) to a batch; deterministic."""
        raise NotImplementedError

    _as_batch = staticmethod(_as_batch)  # (B, C, samples)

    def _encode(self, x):
        plain = x.as_subclass(torch.Tensor)
        self._meta = x.__dict__ if isinstance(x, (TensorAudio, TensorSpectrogram)) else {}
        try:
            batch = self._as_batch(plain)
            # a waveform on a CPU: process the chosen clips only (a spectrogram's masks and gains per row cost
            # less than picking the chosen clips out and putting them back)
            if batch.device.type == "cpu" and batch.ndim == 3 and self.p < 1 and self.subset_on_cpu:
                out = self._encode_subset(batch)
            else:
                self.last_params = params = self.draw(batch)
                out = self.apply(batch, **params)
        finally:
            self._meta = {}
        out = out.reshape(plain.shape)
        if isinstance(x, (TensorAudio, TensorSpectrogram)):
            out = out.as_subclass(type(x))
            out.__dict__.update(x.__dict__)
        return out

    subset_on_cpu = True

    def _encode_subset(self, batch: torch.Tensor) -> torch.Tensor:
        """On a CPU, where choosing items costs no device sync, draw and apply for the chosen items only (the
        work then scales with ``p``); ``last_params`` holds their ``index`` and their parameters."""
        chosen = (self.uniform((batch.shape[0],), 0.0, 1.0, batch.device) < self.p).nonzero().flatten()
        lengths = self._meta.get("lengths")
        if lengths is not None:
            self._meta = {**self._meta, "lengths": torch.as_tensor(lengths)[chosen]}
        if len(chosen) == 0:  # (no draw: some draws, e.g. an FFT of noise, are undefined on an empty batch)
            self.last_params = {"index": chosen}
            return batch
        sub = batch.index_select(0, chosen)  # (three times faster than batch[chosen] on a CPU)
        params = self._draw(sub, len(chosen), batch.device)
        self.last_params = {"index": chosen, **params}
        out = batch.clone()
        out[chosen] = self.apply(sub, **params)
        return out

    _meta: dict = {}

    def _rate(self) -> int:
        """The rate of the batch being augmented (``TensorAudio``), else the ``sample_rate`` the transform got."""
        sr = self._meta.get("sample_rate") or getattr(self, "sample_rate", None)
        if sr is None:
            raise ParameterError(
                f"{type(self).__name__} needs the audio's rate: pass a TensorAudio, or build it with sample_rate=<Hz>"
            )
        return int(sr)


def _valid_samples(x: torch.Tensor, lengths) -> torch.Tensor | None:
    """``(B, 1, samples)`` mask of the real samples of a padded variable-length batch (None when not padded)."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths, device=x.device)
    return (torch.arange(x.shape[-1], device=x.device) < lengths[:, None])[:, None, :]


def _rms(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Root mean square per item over channels and (real) samples: ``(B,)``."""
    if mask is None:
        return torch.linalg.vector_norm(x.float(), dim=(1, 2)) / math.sqrt(x.shape[1] * x.shape[2])
    count = (mask.sum(dim=(1, 2)) * x.shape[1]).clamp_min(1)
    return torch.linalg.vector_norm(x.float() * mask, dim=(1, 2)) / count.sqrt()


# ---------------------------------------------------------------------------------------------------------------------
# Waveform augmentations
# ---------------------------------------------------------------------------------------------------------------------


class RandomGain(AudioAugment):
    """Multiply each clip by a random gain in decibels: ``(B, C, samples)`` -> same.

    Args:
        min_gain_db, max_gain_db: range of the gain (dB); -6 dB halves the amplitude.
        p, seed: see ``AudioAugment``.

    Examples:
        >>> RandomGain(-6, 6, p=1.0)(TensorAudio(torch.randn(8, 1, 16000), sample_rate=16000), split_idx=0).shape
        torch.Size([8, 1, 16000])
    """

    identity = {"gain_db": 0.0}

    def __init__(self, min_gain_db: float = -6.0, max_gain_db: float = 6.0, p: float = 0.5, seed: int | None = None):
        super().__init__(p, seed)
        self.min_gain_db, self.max_gain_db = _check_range("gain_db", min_gain_db, max_gain_db)

    def _draw(self, x, n, device):
        return {"gain_db": self.uniform((n,), self.min_gain_db, self.max_gain_db, device)}

    def apply(self, x, gain_db):
        return x * torch.pow(10.0, gain_db / 20.0).to(x.dtype)[:, None, None]


class PolarityInversion(AudioAugment):
    """Flip the sign of the waveform (inaudible alone; it changes the phase relations in a mix).

    Examples:
        >>> PolarityInversion(p=1.0).apply(torch.ones(1, 1, 4), sign=torch.tensor([-1.0]))
        tensor([[[-1., -1., -1., -1.]]])
    """

    identity = {"sign": 1.0}

    def _draw(self, x, n, device):
        return {"sign": torch.full((n,), -1.0, device=device)}

    def apply(self, x, sign):
        return x * sign.to(x.dtype)[:, None, None]


class RandomShift(AudioAugment):
    """Shift each clip in time by a random fraction of its length, rolling it round or filling with silence.

    Args:
        min_shift, max_shift: range of the shift as a fraction of the clip's length (negative: earlier).
        rollover: samples pushed past one end come back at the other (a circular shift); else silence fills in.
        p, seed: see ``AudioAugment``.

    ``apply`` takes ``shift`` in samples: ``apply(x, shift=torch.tensor([160]))`` delays the clip by 160 samples.

    Examples:
        >>> RandomShift(-0.25, 0.25, rollover=False, p=1.0)(batch, split_idx=0)
    """

    identity = {"shift": 0}

    def __init__(self, min_shift: float = -0.5, max_shift: float = 0.5, rollover: bool = True, p: float = 0.5,
                 seed: int | None = None):  # fmt: skip
        super().__init__(p, seed)
        self.min_shift, self.max_shift = _check_range("shift", min_shift, max_shift)
        if max(abs(self.min_shift), abs(self.max_shift)) > 1:
            raise ParameterError(f"shift is a fraction of the clip's length: keep it within [-1, 1], got "
                                 f"({min_shift}, {max_shift})")  # fmt: skip
        self.rollover = rollover

    def _draw(self, x, n, device):
        frac = self.uniform((n,), self.min_shift, self.max_shift, device)
        return {"shift": torch.round(frac * x.shape[-1]).long()}

    def apply(self, x, shift):
        n = x.shape[-1]
        if x.device.type == "cpu":  # a copy per clip beats a gather on a CPU; on a GPU it would sync on shift
            out = torch.empty_like(x) if self.rollover else torch.zeros_like(x)
            for i, k in enumerate(shift.tolist()):
                k = k % n if self.rollover else max(-n, min(n, k))
                if self.rollover:
                    out[i, :, k:], out[i, :, :k] = x[i, :, : n - k], x[i, :, n - k :]
                elif k >= 0:
                    out[i, :, k:] = x[i, :, : n - k]
                else:
                    out[i, :, : n + k] = x[i, :, -k:]
            return out
        return _shift_gather(x, shift, self.rollover)


def _shift_gather(x: torch.Tensor, shift: torch.Tensor, rollover: bool) -> torch.Tensor:
    """Per-item shift of ``(B, C, samples)`` as one gather (no host sync)."""
    n = x.shape[-1]
    src = torch.arange(n, device=x.device)[None, :] - shift.to(x.device)[:, None]  # (B, samples)
    inside = (src >= 0) & (src < n)
    src = src.remainder(n) if rollover else src.clamp(0, n - 1)
    out = x.gather(-1, src[:, None, :].expand_as(x))
    return out if rollover else out * inside[:, None, :].to(x.dtype)


_NOISE_COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def colored_noise(shape, exponent, device, generator=None) -> torch.Tensor:
    """Gaussian noise whose power falls as ``1 / f**exponent`` (0 white, 1 pink, 2 brown), unit RMS per item.

    Args:
        shape: ``(B, C, samples)``.
        exponent: a float for all items, or ``(B,)`` per item (shaped with one FFT of the batch).

    Examples:
        >>> colored_noise((2, 1, 16000), torch.tensor([0.0, 1.0]), "cpu").pow(2).mean(dim=(1, 2))
        tensor([1.0000, 1.0000])
    """
    noise = torch.randn(shape, device=device, generator=generator)
    if noise.numel() == 0:
        return noise
    if not (isinstance(exponent, (int, float)) and exponent == 0):
        spec = torch.fft.rfft(noise)
        f = torch.arange(spec.shape[-1], device=device, dtype=noise.dtype).clamp_min(1.0)
        exponent = torch.as_tensor(exponent, dtype=noise.dtype, device=device).reshape(-1, 1, 1)
        noise = torch.fft.irfft(spec * f.pow(-exponent / 2), n=shape[-1])
        noise = noise - noise.mean(dim=-1, keepdim=True)
    return noise / noise.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-12)


class AddNoise(AudioAugment):
    """Add white, pink or brown Gaussian noise at a random signal-to-noise ratio (dB), per clip.

    The noise is scaled against each clip's RMS (over the real samples of a padded batch; padding gets no noise), so
    an SNR of 10 dB means the noise carries a tenth of the clip's power. A silent clip stays silent.

    Each clip (and channel) gets a random excerpt of a bank of ``bank_samples`` samples of noise per colour, drawn once
    per device (from the transform's generator) and periodic, so an excerpt may wrap around without a seam.
    Drawing and colouring fresh noise for every batch would cost more than the whole log-mel front-end on a CPU; the
    bank turns it into a gather on a GPU, and into an add read straight from the bank, clip by clip, on a CPU. With
    the default 2**20 samples (65 s at 16 kHz) two 4-second excerpts overlap by chance about 12 % of the time, at a
    random SNR each. The bank takes 4 MB per colour at that size, and on a CPU its running sums take twice that again.
    Neither is pickled (an exported learner does not augment).

    Args:
        min_snr_db, max_snr_db: range of the SNR (dB).
        color: ``'white'``, ``'pink'``, ``'brown'``, or ``'random'`` (one of the three per clip).
        p, seed: see ``AudioAugment``.
        bank_samples: length of the noise bank per colour (samples).

    Examples:
        >>> AddNoise(10, 30, color="pink", p=1.0)(batch, split_idx=0)
    """

    identity = {"snr_db": math.inf}

    def __init__(self, min_snr_db: float = 10.0, max_snr_db: float = 40.0, color: str = "white", p: float = 0.5,
                 seed: int | None = None, bank_samples: int = 2**20):  # fmt: skip
        super().__init__(p, seed)
        self.min_snr_db, self.max_snr_db = _check_range("snr_db", min_snr_db, max_snr_db)
        self.color = check_choice("color", color, (*_NOISE_COLORS, "random"))
        self.bank_samples = check_positive("bank_samples", bank_samples, integer=True)
        self._bank = None

    def __getstate__(self):
        state = super().__getstate__()
        state["_bank"] = state["_sums"] = None
        return state

    def bank(self, device) -> torch.Tensor:
        """``(colours, bank_samples)`` unit-RMS, zero-mean, periodic noise on ``device``: white, pink and brown rows
        for ``color='random'``, else one row."""
        device = torch.device(device)
        if self._bank is None or self._bank.device != device:
            colors = list(_NOISE_COLORS) if self.color == "random" else [self.color]
            exponents = torch.tensor([_NOISE_COLORS[c] for c in colors], device=device)
            rows = colored_noise((len(colors), 1, self.bank_samples), exponents, device, self.generator(device))
            self._bank = rows[:, 0]
        return self._bank

    subset_on_cpu = False  # the per-clip CPU path skips the clips that are not augmented by itself

    def _draw(self, x, n, device):
        bank = self.bank(device)
        row = torch.randint(0, bank.shape[0], (n, 1), device=device, generator=self.generator(device))
        offset = torch.randint(0, self.bank_samples, (n, x.shape[1]), device=device, generator=self.generator(device))
        return {"snr_db": self.uniform((n,), self.min_snr_db, self.max_snr_db, device), "row": row.expand_as(offset),
                "offset": offset, "lengths": self._meta.get("lengths")}  # fmt: skip

    def apply(self, x, snr_db, row, offset, lengths=None):
        """Add the excerpts of the bank that start at ``offset`` (``(B, C)`` samples) in ``row`` (``(B, C)``) at
        ``snr_db`` (``(B,)``; ``inf`` leaves a clip as it is); ``lengths`` (``(B,)``) marks the padding."""
        if x.device.type == "cpu":
            return self._apply_per_clip(x, snr_db, row, offset, lengths)
        return self._apply_batched(x, snr_db, row, offset, lengths)

    def noise(self, row, offset, length: int) -> torch.Tensor:
        """``(B, C, length)``: the bank's excerpts for the draws ``row`` and ``offset`` (``(B, C)``), as drawn (the
        mean is removed when they are added)."""
        bank, period = self.bank(offset.device), self.bank_samples
        start = (row * period).flatten()
        out = _excerpts(bank.flatten(), start, torch.full_like(start, period), offset.flatten(), length)
        return out.view(*offset.shape, length)

    def _apply_batched(self, x, snr_db, row, offset, lengths):
        """One pass over the batch (no host sync): gather the excerpts, remove their mean, scale, add."""
        mask = _valid_samples(x, lengths)
        noise = self.noise(row, offset, x.shape[-1])
        # no DC offset in the clip (a brown excerpt drifts): remove the mean over the real samples
        if mask is None:
            noise -= noise.mean(dim=-1, keepdim=True)
        else:
            noise -= (noise * mask).sum(dim=-1, keepdim=True) / mask.sum(dim=-1, keepdim=True).clamp_min(1)
        # noise RMS over the real samples; 0 where snr is +inf (not augmented) or the clip is silent
        scale = _rms(x, mask) / (_rms(noise, mask).clamp_min(1e-12) * torch.pow(10.0, snr_db / 20.0))
        scale = scale[:, None, None] if mask is None else scale[:, None, None] * mask
        return torch.addcmul(x, noise.to(x.dtype), scale.to(x.dtype))

    def _apply_per_clip(self, x, snr_db, row, offset, lengths):
        """The same on a CPU, clip by clip: each clip's slices stay in cache, the excerpts are read in place from the
        bank (no copy), their mean and power come from running sums of the bank, and a clip that is not augmented is
        only copied. Two to three times faster than the batched path on a CPU."""
        bank = self.bank(x.device)
        sums, squares = self._running_sums(bank)
        period, out = self.bank_samples, torch.empty_like(x)
        n, channels, length = x.shape
        real = [length] * n if lengths is None else torch.as_tensor(lengths).tolist()
        for i, (snr, size, rows, starts) in enumerate(zip(snr_db.tolist(), real, row.tolist(), offset.tolist())):
            clip = x[i, :, :size]
            power = 0.0 if math.isinf(snr) else float(torch.linalg.vector_norm(clip)) ** 2 / max(clip.numel(), 1)
            if power == 0.0:  # not augmented, or silent
                out[i].copy_(x[i])
                continue
            means = [_looped_sum(sums[r], pos, size, period) / size for r, pos in zip(rows, starts)]
            noise_power = sum(_looped_sum(squares[r], pos, size, period) / size - m * m
                              for r, pos, m in zip(rows, starts, means)) / channels  # fmt: skip
            scale = math.sqrt(power / max(noise_power, 1e-24)) * 10.0 ** (-snr / 20.0)
            for c, (r, pos) in enumerate(zip(rows, starts)):
                for at, piece in _excerpt_pieces(bank[r], pos, size):
                    torch.add(clip[c, at : at + piece.numel()], piece, alpha=scale,
                              out=out[i, c, at : at + piece.numel()])  # fmt: skip
                out[i, c, :size].sub_(scale * means[c])
            if size < length:  # the padding of a padded batch
                out[i, :, size:].copy_(x[i, :, size:])
        return out

    _sums = None  # (bank, [running sums, running sums of squares]) on a CPU

    def _running_sums(self, bank: torch.Tensor) -> list:
        """Running sums of the CPU ``bank`` and of its squares (numpy, ``(colours, bank_samples + 1)``), cached with
        it: an excerpt's mean and power in O(1). Summed in float64, kept in float32 (twice the bank's memory; an
        excerpt's power is then exact to about 1e-6)."""
        if self._sums is None or self._sums[0] is not bank:
            rows = bank.double().numpy()
            zero = np.zeros((rows.shape[0], 1))
            sums = [np.concatenate([zero, np.cumsum(v, axis=1)], axis=1).astype(np.float32) for v in (rows, rows**2)]
            self._sums = (bank, sums)
        return self._sums[1]


def _looped_sum(cumsum: np.ndarray, pos: int, length: int, period: int) -> float:
    """Sum of ``length`` values of a periodic signal from ``pos`` on, from its running sum ``cumsum`` (one period)."""
    laps, rest = divmod(length, period)
    at = [float(v) for v in cumsum[[pos, period, (pos + rest) % period]]]  # start, one lap, end (in float64)
    wraps = pos + rest >= period
    return laps * at[1] + at[2] - at[0] + (at[1] if wraps else 0.0)


def _excerpt_pieces(clip: torch.Tensor, pos: int, length: int):
    """``(at, view)`` pieces of ``length`` samples of the 1-D ``clip`` from ``pos`` on, looping past its end."""
    at = 0
    while at < length:
        piece = clip[pos : pos + length - at]
        yield at, piece
        at, pos = at + piece.numel(), 0


def _excerpts(audio: torch.Tensor, clip_start, clip_length, offset, length: int) -> torch.Tensor:
    """``(B, length)``: for each item, ``length`` samples of the clip ``audio[clip_start : clip_start + clip_length]``
    from ``offset`` on, looping past the clip's end (all ``(B,)`` integer tensors; ``audio`` is 1-D).

    Slices on a CPU, where the draws are already on the host and a ``(B, length)`` gather index costs ten times more;
    one gather elsewhere (no host sync)."""
    if audio.device.type != "cpu":
        pos = (offset[:, None] + torch.arange(length, device=audio.device)) % clip_length[:, None]
        return audio[clip_start[:, None] + pos]
    out = []
    for start, size, pos in zip(clip_start.tolist(), clip_length.tolist(), offset.tolist()):
        pieces = [piece for _, piece in _excerpt_pieces(audio[start : start + size], pos, length)]
        out.append(pieces[0] if len(pieces) == 1 else torch.cat(pieces))
    return torch.stack(out)


class AddBackground(AudioAugment):
    """Mix a random excerpt of a background recording into each clip at a random SNR (dB).

    The background files are decoded once (mono, resampled to the batch's rate, at most ``max_seconds`` in all) and
    kept on the batch's device, so each batch costs a gather and an add. They are not pickled: an exported learner
    does not carry them (it does not augment).

    Args:
        source: a folder of audio files (searched recursively) or a list of files.
        min_snr_db, max_snr_db: range of the SNR of the clip over the background (dB).
        max_seconds: cap on the total background audio kept in memory.
        p, seed: see ``AudioAugment``.

    Examples:
        >>> AddBackground("data/noises", 3, 30, p=0.5)
    """

    identity = {"snr_db": math.inf}

    def __init__(self, source, min_snr_db: float = 3.0, max_snr_db: float = 30.0, max_seconds: float = 600.0,
                 p: float = 0.5, seed: int | None = None):  # fmt: skip
        from ..files import get_audio_files

        super().__init__(p, seed)
        self.min_snr_db, self.max_snr_db = _check_range("snr_db", min_snr_db, max_snr_db)
        self.max_seconds = check_positive("max_seconds", max_seconds)
        if isinstance(source, (str, Path)):
            self.files = list(get_audio_files(source))
            if not self.files:
                raise AudioFileError(source, "holds no audio files; point AddBackground at a folder of recordings")
        else:
            self.files = [Path(f) for f in source]
            if not self.files:
                raise ParameterError("AddBackground needs at least one background file")
        self._bank = None

    def __getstate__(self):
        state = super().__getstate__()
        state["_bank"] = None
        return state

    def bank(self, sample_rate: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(audio, starts, lengths)``: every background clip end to end (1-D, on ``device``) and where each is."""
        key = (int(sample_rate), torch.device(device))
        if self._bank is None or self._bank[0] != key:
            from ..io import load_audio

            clips, budget = [], int(self.max_seconds * sample_rate)
            for f in self.files:
                wav, _ = load_audio(f, sample_rate=sample_rate, mono=True)
                clips.append(wav[0, :budget])
                budget -= clips[-1].numel()
                if budget <= 0:
                    break
            clips = [c for c in clips if c.numel() > 0]
            if not clips:
                raise AudioFileError(self.files[0], "the background files hold no samples")
            lengths = torch.tensor([c.numel() for c in clips])
            starts = torch.cumsum(lengths, 0) - lengths
            self._bank = (key, (torch.cat(clips).to(device), starts.to(device), lengths.to(device)))
        return self._bank[1]

    def _draw(self, x, n, device):
        audio, starts, lengths = self.bank(self._rate(), device)
        which = torch.randint(0, len(lengths), (n,), device=device, generator=self.generator(device))
        offset = (self.uniform((n,), 0.0, 1.0, device) * lengths[which]).long()
        background = _excerpts(audio, starts[which], lengths[which], offset, x.shape[-1])  # a short one loops
        background = background[:, None, :].expand(-1, x.shape[1], -1)
        return {"snr_db": self.uniform((n,), self.min_snr_db, self.max_snr_db, device),
                "background": background}  # fmt: skip

    def apply(self, x, snr_db, background):
        scale = _rms(x, None) / (_rms(background, None).clamp_min(1e-12) * torch.pow(10.0, snr_db / 20.0))
        return x + (background * scale[:, None, None]).to(x.dtype)


class _RandomFilter(AudioAugment):
    """Zero-phase Butterworth-shaped filter, one cutoff per clip: on the FFT of a waveform ``(B, C, samples)``, or
    as a gain per row of a power or magnitude spectrogram ``(B, C, freq, frames)``, whichever it is given."""

    identity = {"cutoff": math.nan}
    highpass = False
    accepts = (TensorAudio, TensorSpectrogram)

    def __init__(self, min_cutoff: float, max_cutoff: float, order: int = 4, sample_rate: int | None = None,
                 p: float = 0.5, seed: int | None = None, domain: str = "waveform"):  # fmt: skip
        super().__init__(p, seed)
        self.min_cutoff, self.max_cutoff = _check_range("cutoff", min_cutoff, max_cutoff)
        check_positive("min_cutoff", self.min_cutoff)
        # (not ``self.order``: that is the transform's place in fastai's pipeline)
        self.filter_order = check_positive("order", order, integer=True)
        self.domain = check_choice("domain", domain, ("waveform", "spectrogram"))
        if domain == "spectrogram":
            self.order = 25  # after the spectrogram (20), before AmplitudeToDB (30)
        self.sample_rate = check_sample_rate(sample_rate, allow_none=True)
        self._freqs = {}

    def __getstate__(self):
        state = super().__getstate__()
        state["_freqs"] = {}
        return state

    def _draw(self, x, n, device):
        return {"cutoff": self.uniform((n,), self.min_cutoff, self.max_cutoff, device)}

    def gain(self, cutoff: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        """Magnitude response ``(B, F)`` at the frequencies ``freqs`` ``(F,)`` in Hz (1 where ``cutoff`` is NaN)."""
        # the identity (NaN) as a cutoff that passes everything: 0 Hz for a high-pass, infinity for a low-pass
        cutoff = torch.nan_to_num(cutoff, nan=0.0 if self.highpass else math.inf)[:, None]
        ratio = (cutoff / freqs.clamp_min(1e-6)) if self.highpass else (freqs / cutoff)
        return torch.rsqrt(1.0 + _int_power(ratio * ratio, self.filter_order))

    def response(self, cutoff: torch.Tensor, n_samples: int, sample_rate: int) -> torch.Tensor:
        """Magnitude response ``(B, n_samples // 2 + 1)`` on the rfft grid of a clip of ``n_samples``."""
        return self.gain(cutoff, torch.fft.rfftfreq(n_samples, d=1.0 / sample_rate).to(cutoff.device))

    def _as_batch(self, x):
        return _as_spec_batch(x) if "scale" in self._meta else _as_batch(x)

    def apply(self, x, cutoff):
        if x.ndim == 4:  # a spectrogram: each row times the response at its frequency (to the spectrogram's power)
            freqs, power = self._rows(x)
            return x * self.gain(cutoff, freqs).pow(power)[:, None, :, None].to(x.dtype)
        h = self.response(cutoff, x.shape[-1], self._rate())
        return torch.fft.irfft(torch.fft.rfft(x.float()) * h[:, None, :], n=x.shape[-1]).to(x.dtype)

    def _rows(self, x) -> tuple[torch.Tensor, float]:
        """The centre frequencies (Hz) ``(freq,)`` of the rows of the spectrogram being filtered (cached per device),
        and its power (2 or 1)."""
        meta, name = self._meta or getattr(x, "__dict__", {}), type(self).__name__
        if meta.get("db") or meta.get("normalized") or "power" not in meta:
            raise ParameterError(
                f"{name} filters a power or magnitude spectrogram, before AmplitudeToDB and SpecNormalize; it got one "
                f"that is {'in dB' if meta.get('db') else 'normalised' if meta.get('normalized') else 'unlabelled'}"
                f": use {name}(domain='spectrogram'), which runs right after the spectrogram, or domain='waveform'"
            )  # fmt: skip
        key = (x.device, x.shape[-2], *(meta.get(k) for k in _AXIS_KEYS))
        if key not in self._freqs:
            freqs = _row_frequencies(meta, x.shape[-2])
            if freqs is None:
                raise ParameterError(f"{name} cannot tell the frequency of the rows of a {meta.get('scale')!r} "
                                     "spectrogram; filter the waveform (domain='waveform')")  # fmt: skip
            self._freqs[key] = torch.as_tensor(freqs, dtype=torch.float32, device=x.device)
        return self._freqs[key], float(meta["power"])


_AXIS_KEYS = ("scale", "sample_rate", "n_fft", "f_min", "f_max", "mel_scale", "bins_per_octave")


def _int_power(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x ** n`` for an int ``n >= 1`` by repeated squaring (a few multiplications: ten times faster than ``pow``
    on a CPU)."""
    result, square = None, x
    while n:
        if n & 1:
            result = square if result is None else result * square
        n >>= 1
        if n:
            square = square * square
    return result


class RandomLowpass(_RandomFilter):
    """Low-pass each clip at a random cutoff (Hz): a duller microphone or a muffled room.

    The response is Butterworth's magnitude, ``1 / sqrt(1 + (f / cutoff) ** (2 * order))``, with zero phase.
    ``domain='waveform'`` applies it to the FFT of the clip ``(B, C, samples)`` (one batched FFT each way, any cutoff
    per clip). ``domain='spectrogram'`` runs right after the spectrogram transform instead (``order`` 25, before
    ``AmplitudeToDB``) and multiplies each row of the power or magnitude spectrogram ``(B, C, freq, frames)`` by the
    response at the row's centre frequency: about a hundred times cheaper, and within 0.5 dB of filtering the
    waveform for the default low-pass cutoffs on a 64-band mel spectrogram (the approximation assumes the response
    is flat across a band; it is coarsest where the response is steep and bands are wide). A waveform reaching a
    spectrogram-domain filter, in a pipeline without a spectrogram, is still filtered on its FFT.

    Args:
        min_cutoff, max_cutoff: cutoff range (Hz).
        order: the Butterworth order: steepness, about ``6 * order`` dB per octave (not the pipeline's ``order``).
        sample_rate: the audio's rate when the input is a plain tensor (``TensorAudio`` carries its own).
        p, seed: see ``AudioAugment``.
        domain: ``'waveform'`` or ``'spectrogram'`` (see above).

    Examples:
        >>> RandomLowpass(1000, 4000, p=0.3)                          # on the waveform
        >>> dls = AudioDataLoaders.from_nsynth(root, batch_tfms=[*mel_transforms("nsynth"),
        ...                                                       RandomLowpass(domain="spectrogram")])
    """

    def __init__(self, min_cutoff: float = 1500.0, max_cutoff: float = 7500.0, order: int = 4,
                 sample_rate: int | None = None, p: float = 0.5, seed: int | None = None,
                 domain: str = "waveform"):  # fmt: skip
        super().__init__(min_cutoff, max_cutoff, order, sample_rate, p, seed, domain)


class RandomHighpass(_RandomFilter):
    """High-pass each clip at a random cutoff (Hz): a thin microphone, or rumble removed.

    ``1 / sqrt(1 + (cutoff / f) ** (2 * order))`` with zero phase; see ``RandomLowpass`` for the arguments and the
    two domains. In the spectrogram domain the narrow low mel bands below a high cutoff are attenuated more
    than filtering the waveform would (by tens of dB where the waveform's window leaks energy from above the
    cutoff into them); the bands that carry energy agree.

    Examples:
        >>> RandomHighpass(50, 400, p=0.3)
    """

    highpass = True

    def __init__(self, min_cutoff: float = 40.0, max_cutoff: float = 400.0, order: int = 4,
                 sample_rate: int | None = None, p: float = 0.5, seed: int | None = None,
                 domain: str = "waveform"):  # fmt: skip
        super().__init__(min_cutoff, max_cutoff, order, sample_rate, p, seed, domain)


class _GroupedAugment(AudioAugment):
    """Augmentations whose kernels depend on the drawn value: values are quantised to ``step``, drawn on the host,
    and the batch is processed one group of equal values at a time."""

    identity = {"value": 0.0}
    subset_on_cpu = False  # only the chosen clips are processed already

    def _draw(self, x, n, device):
        steps = torch.randint(self._lo, self._hi + 1, (n,), generator=self.generator("cpu"))
        return {"value": steps.double() * self.step}

    def draw(self, x):
        n = x.shape[0]
        params = self._draw(x, n, "cpu")
        keep = torch.rand((n,), generator=self.generator("cpu")) >= self.p
        params["value"] = torch.where(keep, torch.full_like(params["value"], self.identity["value"]), params["value"])
        return params

    def apply(self, x, value):
        out = x.clone()
        value = torch.as_tensor(value, dtype=torch.float64).cpu()
        for v in torch.unique(value).tolist():
            if v == self.identity["value"]:
                continue
            idx = (value == v).nonzero().flatten().to(x.device)
            out[idx] = self._apply_one(x[idx], v)
        return out

    def _apply_one(self, x, value: float) -> torch.Tensor:
        raise NotImplementedError


def _fit_length(x: torch.Tensor, n: int) -> torch.Tensor:
    return x[..., :n] if x.shape[-1] >= n else F.pad(x, (0, n - x.shape[-1]))


def _stretch(x: torch.Tensor, rate: float, n_fft: int) -> torch.Tensor:
    """Phase-vocoder time stretch of ``(..., samples)``: ``rate`` > 1 is faster (shorter); the pitch is kept."""
    import torchaudio.functional as AF

    hop = n_fft // 4
    flat = x.reshape(-1, x.shape[-1]).float()
    window = torch.hann_window(n_fft, device=x.device)
    spec = torch.stft(flat, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, math.pi * hop, spec.shape[-2], device=x.device)[..., None]
    stretched = AF.phase_vocoder(spec, rate, advance)
    y = torch.istft(stretched, n_fft, hop, window=window, length=round(x.shape[-1] / rate))
    return y.reshape(*x.shape[:-1], y.shape[-1])


def _fft_resample(x: torch.Tensor, n: int) -> torch.Tensor:
    """Band-limited resampling of ``(..., m)`` to ``(..., n)`` samples through the FFT (one transform each way)."""
    m = x.shape[-1]
    spec = torch.fft.rfft(x)
    keep = min(spec.shape[-1], n // 2 + 1)
    return torch.fft.irfft(spec[..., :keep], n=n) * (n / m)


class PitchShift(_GroupedAugment):
    """Shift the pitch of each clip by a random number of semitones, keeping its duration.

    A phase-vocoder time stretch by ``2 ** (semitones / 12)`` (``torchaudio.functional.phase_vocoder``) followed by
    band-limited FFT resampling back to the clip's length, which moves every frequency by that factor. Quality:
    clean for a few semitones on tonal sounds; transients smear and large shifts sound "phasey". Cost: one STFT,
    its inverse and two FFTs per group of clips sharing a shift (see docs/performance.md), so the draw is quantised
    to ``step`` semitones; the default ``p`` is low.

    Args:
        min_semitones, max_semitones: range of the shift.
        step: resolution of the draw in semitones (a divisor of 1: 1, 0.5, 0.25...).
        n_fft: FFT size of the phase vocoder.
        p, seed: see ``AudioAugment`` (drawn on the host).

    ``apply(x, value=...)`` takes the semitones per clip.

    Examples:
        >>> PitchShift(-2, 2, p=0.3)
    """

    def __init__(self, min_semitones: float = -2.0, max_semitones: float = 2.0, step: float = 0.5, n_fft: int = 512,
                 p: float = 0.3, seed: int | None = None):  # fmt: skip
        super().__init__(p, seed)
        self.min_semitones, self.max_semitones = _check_range("semitones", min_semitones, max_semitones)
        self.step = check_positive("step", step)
        if abs(1 / self.step - round(1 / self.step)) > 1e-9:
            raise ParameterError(f"step must divide one semitone (1, 0.5, 0.25...), got {step}")
        self._lo, self._hi = math.ceil(self.min_semitones / self.step), math.floor(self.max_semitones / self.step)
        self.n_fft = check_positive("n_fft", n_fft, integer=True)

    def _apply_one(self, x, value):
        factor = 2.0 ** (value / 12)
        return _fft_resample(_stretch(x, 1 / factor, self.n_fft), x.shape[-1]).to(x.dtype)


class TimeStretch(_GroupedAugment):
    """Play each clip faster or slower by a random rate without changing its pitch, keeping the batch's length.

    A phase vocoder (``torchaudio.functional.phase_vocoder``) on the clip's STFT; a rate above 1 shortens the clip
    (the end is padded with silence), below 1 lengthens it (the end is cut). Quality and cost as for ``PitchShift``
    (no resampling, so cheaper); the draw is quantised to ``step``.

    Args:
        min_rate, max_rate: range of the speed factor.
        step: resolution of the draw.
        n_fft: FFT size of the phase vocoder.
        p, seed: see ``AudioAugment`` (drawn on the host).

    Examples:
        >>> TimeStretch(0.8, 1.25, p=0.3)
    """

    identity = {"value": 1.0}

    def __init__(self, min_rate: float = 0.8, max_rate: float = 1.25, step: float = 0.05, n_fft: int = 512,
                 p: float = 0.3, seed: int | None = None):  # fmt: skip
        super().__init__(p, seed)
        self.min_rate, self.max_rate = _check_range("rate", min_rate, max_rate)
        check_positive("min_rate", self.min_rate)
        self.step = check_positive("step", step)
        self._lo, self._hi = math.ceil(self.min_rate / self.step - 1e-9), math.floor(self.max_rate / self.step + 1e-9)
        self.n_fft = check_positive("n_fft", n_fft, integer=True)

    def _apply_one(self, x, value):
        return _fit_length(_stretch(x, value, self.n_fft), x.shape[-1]).to(x.dtype)


# ---------------------------------------------------------------------------------------------------------------------
# Spectrogram augmentations (SpecAugment)
# ---------------------------------------------------------------------------------------------------------------------


class _Mask(AudioAugment):
    order = 70  # after SpecNormalize (60): 0 is then the mean
    accepts = (TensorSpectrogram,)
    identity = {"widths": 0}
    axis = -2

    def __init__(self, max_width: int, n_masks: int = 2, value: float | str = 0.0, p: float = 0.5,
                 seed: int | None = None):  # fmt: skip
        super().__init__(p, seed)
        self.max_width = check_positive("max_width", max_width, integer=True)
        self.n_masks = check_positive("n_masks", n_masks, integer=True)
        if not (isinstance(value, (int, float)) or value in ("mean", "min")):
            raise ParameterError(f"value must be a number, 'mean' or 'min' (per item), got {value!r}")
        self.value = value

    def _draw(self, x, n, device):
        size = x.shape[self.axis]
        g = self.generator(device)
        widths = torch.randint(0, min(self.max_width, size) + 1, (n, self.n_masks), device=device, generator=g)
        starts = (self.uniform((n, self.n_masks), 0.0, 1.0, device) * (size - widths + 1)).long()
        return {"starts": starts, "widths": widths}

    def mask(self, size: int, starts: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
        """``(B, size)`` True where a band is masked."""
        pos = torch.arange(size, device=starts.device)[None, None, :]
        inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
        return inside.any(dim=1)

    def apply(self, x, starts, widths):
        m = self.mask(x.shape[self.axis], starts, widths)
        m = m[:, None, :, None] if self.axis == -2 else m[:, None, None, :]
        if self.value == "mean":
            fill = x.mean(dim=(1, 2, 3), keepdim=True)
        elif self.value == "min":
            fill = x.amin(dim=(1, 2, 3), keepdim=True)
        else:
            fill = torch.tensor(float(self.value), dtype=x.dtype, device=x.device)
        return torch.where(m, fill, x)

    _as_batch = staticmethod(_as_spec_batch)  # (B, C, freq, frames)


class FrequencyMask(_Mask):
    """SpecAugment's frequency masking: ``n_masks`` bands of up to ``max_width`` bins set to ``value``, per item.

    Input and output ``(B, C, freq, frames)``. Widths are uniform in ``0..max_width``, starts uniform over the axis;
    each item draws its own. The default ``value=0`` is the mean after ``SpecNormalize``; ``'mean'`` and ``'min'`` use
    each item's own.

    Examples:
        >>> FrequencyMask(max_width=8, n_masks=2)(spec_batch, split_idx=0)
    """

    axis = -2

    def __init__(self, max_width: int = 8, n_masks: int = 2, value: float | str = 0.0, p: float = 0.5,
                 seed: int | None = None):  # fmt: skip
        super().__init__(max_width, n_masks, value, p, seed)


class TimeMask(_Mask):
    """SpecAugment's time masking: ``n_masks`` spans of up to ``max_width`` frames set to ``value``, per item.

    See ``FrequencyMask``; at 16 kHz with hop 256 a frame is 16 ms, so the default 25 frames is 0.4 s.

    Examples:
        >>> TimeMask(max_width=25, n_masks=2)(spec_batch, split_idx=0)
    """

    axis = -1

    def __init__(self, max_width: int = 25, n_masks: int = 2, value: float | str = 0.0, p: float = 0.5,
                 seed: int | None = None):  # fmt: skip
        super().__init__(max_width, n_masks, value, p, seed)


class TimeWarp(AudioAugment):
    """SpecAugment's time warping: a random frame moves by up to ``max_warp`` frames, per item; the time axis is
    stretched linearly on one side of it and squeezed on the other, and the first and last frames stay in place.

    For each item a frame ``centre`` (uniform in ``[w + 1, frames - 2 - w]``, ``w = max_warp``) moves to
    ``centre + shift`` (``shift`` uniform in ``[-w, w]``, fractional). Output frame ``t`` then takes the input at
    ``t * centre / (centre + shift)`` before the moved frame, and at the matching point of the other segment after
    it, interpolated linearly between the two nearest frames. A padded batch (``lengths``, in frames) is warped
    within each item's own frames; its padding is left alone. Input and output ``(B, C, freq, frames)``.

    It runs after ``SpecNormalize`` and before the masks, as in SpecAugment. Its cost is two gathers over the batch.

    Args:
        max_warp: the largest move of the centre frame, in frames (at 16 kHz with hop 256 a frame is 16 ms).
        p, seed: see ``AudioAugment``.

    Examples:
        >>> TimeWarp(max_warp=10)(spec_batch, split_idx=0)
        >>> TimeWarp().apply(spec, centre=torch.tensor([50]), shift=torch.tensor([10.0]))  # frame 50 to 60
    """

    order = 65  # after SpecNormalize (60), before the masks (70)
    accepts = (TensorSpectrogram,)
    identity = {"shift": 0.0}

    def __init__(self, max_warp: int = 10, p: float = 0.5, seed: int | None = None):
        super().__init__(p, seed)
        self.max_warp = check_positive("max_warp", max_warp, integer=True)

    def _draw(self, x, n, device):
        frames = _frame_counts(x, self._meta.get("lengths"))
        w = torch.minimum(torch.full_like(frames, self.max_warp), (frames - 3) // 2).clamp_min(0)
        span = (frames - 2 - 2 * w).clamp_min(1)  # centre in [w + 1, frames - 2 - w]
        centre = w + 1 + (self.uniform((n,), 0.0, 1.0, device) * span).long().clamp_max(span - 1)
        shift = self.uniform((n,), -1.0, 1.0, device) * w
        return {"centre": centre, "shift": shift, "lengths": self._meta.get("lengths")}

    def apply(self, x, centre, shift, lengths=None):
        """Warp each item's time axis: frame ``centre`` (``(B,)``, int) moves to ``centre + shift`` (``(B,)``)."""
        n_frames = x.shape[-1]
        last = (_frame_counts(x, lengths) - 1).to(x.device, torch.float32)[:, None]  # (B, 1)
        t = torch.arange(n_frames, device=x.device, dtype=torch.float32)[None, :]  # (1, frames)
        c = centre.to(x.device, torch.float32)[:, None]
        s = shift.to(x.device, torch.float32)[:, None]
        d = c + s
        before = t * c / d.clamp_min(1e-6)
        after = c + (t - d) * (last - c) / (last - d).clamp_min(1e-6)
        src = torch.where(t <= d, before, after).clamp(min=0.0)
        src = torch.where((s == 0) | (t > last), t, torch.minimum(src, last))
        low = src.floor().long()
        high = (low + 1).clamp_max(n_frames - 1)
        weight = (src - low).to(x.dtype)[:, None, None, :]
        index = (low[:, None, None, :].expand_as(x), high[:, None, None, :].expand_as(x))
        return torch.lerp(x.gather(-1, index[0]), x.gather(-1, index[1]), weight)

    _as_batch = staticmethod(_as_spec_batch)  # (B, C, freq, frames)


def _frame_counts(x: torch.Tensor, lengths) -> torch.Tensor:
    """``(B,)`` int64 valid frames per item of a spectrogram batch (all its frames when not padded)."""
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)
    return torch.as_tensor(lengths, device=x.device).long().clamp_max(x.shape[-1])


# ---------------------------------------------------------------------------------------------------------------------
# Mixing
# ---------------------------------------------------------------------------------------------------------------------


class AudioCutMix(MixHandler):
    """CutMix along time, for waveforms ``(B, C, samples)`` and spectrograms ``(B, C, freq, frames)``: a random span
    of each clip is replaced by the same span of another clip of the batch, and the targets are mixed in proportion
    to the time each clip fills. (fastai's ``CutMix`` cuts rectangles out of 4-D images; fastai's ``MixUp`` works on
    the audio types as it is.) A fastai ``Callback``: ``learn.fit(..., cbs=AudioCutMix())``; training only.

    Args:
        alpha: the cut fraction is drawn from ``Beta(alpha, alpha)``.

    Examples:
        >>> learn = audio_learner(dls, resnet18, cbs=AudioCutMix(1.0))
    """

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)

    def before_batch(self):
        x = self.x
        n = x.shape[-1]
        keep = float(self.distrib.sample((1,)))  # fraction of each clip kept
        width = int(round(n * (1 - keep)))
        start = int(torch.randint(0, n - width + 1, (1,)))
        shuffle = torch.randperm(x.shape[0]).to(x.device)
        xb1, self.yb1 = x[shuffle], tuple(y[shuffle] for y in self.yb)
        mixed = x.clone()
        mixed[..., start : start + width] = xb1[..., start : start + width]
        self.learn.xb = (mixed,) + tuple(self.xb[1:])
        self.lam = torch.tensor(1 - width / n, device=x.device)
        if not self.stack_y:
            ny_dims = len(self.y.size())
            self.learn.yb = tuple(L(self.yb1, self.yb).map_zip(torch.lerp, weight=unsqueeze(self.lam, n=ny_dims - 1)))


# ---------------------------------------------------------------------------------------------------------------------
# Recipe
# ---------------------------------------------------------------------------------------------------------------------


def audio_aug_tfms(*, gain_db: float | None = None, shift: float | None = None, noise_snr_db=(15.0, 40.0),
                   lowpass: bool = True, freq_masks: int = 0, freq_mask_width: int = 8, time_masks: int = 0,
                   time_mask_width: int = 25, time_warp: int = 0, p: float = 0.5,
                   seed: int | None = None) -> list:  # fmt: skip
    """An augmentation recipe, like fastai's ``aug_transforms``: add it to ``batch_tfms`` with the front-end.

    By default ``AddNoise`` (a random colour per clip, ``noise_snr_db`` range) on the waveform and
    ``RandomLowpass(domain='spectrogram')`` (1.5-7.5 kHz) on the spectrogram, each with probability ``p``. Optional
    parts: ``RandomGain(±gain_db)`` and ``RandomShift(±shift)`` on the waveform, ``freq_masks`` frequency masks and
    ``time_masks`` time masks and ``TimeWarp(time_warp)`` (SpecAugment) after ``SpecNormalize``. ``None``/0/False turns
    a part off.

    Measured, not assumed (``bench/augment_study.py``, docs/augment.md): on ``synth_nsynth``'s unseen instruments,
    resnet18 from scratch, it gains +5.2 ± 1.7 points at 10 epochs, where training without augmentation overfits,
    and costs 2.4 ± 2.8 at 6 epochs, the least of the recipes tried (SpecAugment masks -3.7, noise alone -5.8, the
    low-pass alone -5.7, mixup -5.4). Measure on your own data; gain is left out because
    ``AmplitudeToDB(ref='max')`` undoes it.

    Returns:
        A list of transforms; their ``order`` places them around the front-end wherever they are listed.

    Examples:
        >>> dls = AudioDataLoaders.from_nsynth(root, batch_tfms=[*mel_transforms("nsynth"), *audio_aug_tfms()])
        >>> [type(t).__name__ for t in audio_aug_tfms(freq_masks=2, time_masks=2)]
        ['AddNoise', 'RandomLowpass', 'FrequencyMask', 'TimeMask']
    """
    seeds = iter(range(seed, seed + 100)) if seed is not None else iter(lambda: None, 0)
    tfms = []
    if gain_db:
        tfms.append(RandomGain(-gain_db, gain_db, p=p, seed=next(seeds)))
    if shift:
        tfms.append(RandomShift(-shift, shift, p=p, seed=next(seeds)))
    if noise_snr_db:
        tfms.append(AddNoise(*noise_snr_db, color="random", p=p, seed=next(seeds)))
    if lowpass:
        tfms.append(RandomLowpass(p=p, seed=next(seeds), domain="spectrogram"))
    if freq_masks:
        tfms.append(FrequencyMask(freq_mask_width, freq_masks, p=p, seed=next(seeds)))
    if time_masks:
        tfms.append(TimeMask(time_mask_width, time_masks, p=p, seed=next(seeds)))
    if time_warp:
        tfms.append(TimeWarp(time_warp, p=p, seed=next(seeds)))
    return tfms
