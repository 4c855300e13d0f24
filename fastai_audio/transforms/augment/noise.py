"""Additive augmentations: ``AddNoise`` (coloured Gaussian noise) and ``AddBackground`` (excerpts of recordings),
each at a random signal-to-noise ratio per clip."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..._validate import check_choice, check_positive
from ...errors import AudioFileError, ParameterError
from ...functional.noise import (
    NOISE_EXPONENTS,
    colored_noise,
    excerpt_pieces,
    excerpts,
    length_mask,
    looped_sum,
    rms,
    running_sums,
)
from .base import AudioAugment, check_range

__all__ = ["AddBackground", "AddNoise"]


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
        >>> noisy = AddNoise(10, 30, color="pink", p=1.0)(TensorAudio(torch.randn(4, 1, 16000), sample_rate=16000),
        ...                                              split_idx=0)
        >>> noisy.shape, noisy.sample_rate
        (torch.Size([4, 1, 16000]), 16000)
    """

    identity = {"snr_db": math.inf}
    subset_on_cpu = False  # the per-clip CPU path skips the clips that are not augmented by itself

    def __init__(
        self,
        min_snr_db: float = 10.0,
        max_snr_db: float = 40.0,
        color: str = "white",
        p: float = 0.5,
        seed: int | None = None,
        bank_samples: int = 2**20,
    ):
        super().__init__(p, seed)
        self.min_snr_db, self.max_snr_db = check_range("snr_db", min_snr_db, max_snr_db)
        self.color = check_choice("color", color, (*NOISE_EXPONENTS, "random"))
        self.bank_samples = check_positive("bank_samples", bank_samples, integer=True)
        self._bank = None
        self._sums = None  # (bank, [running sums, running sums of squares]) on a CPU

    def __getstate__(self):
        state = super().__getstate__()
        state["_bank"] = state["_sums"] = None
        return state

    def bank(self, device) -> torch.Tensor:
        """``(colours, bank_samples)`` unit-RMS, zero-mean, periodic noise on ``device``: white, pink and brown rows
        for ``color='random'``, else one row."""
        device = torch.device(device)
        if self._bank is None or self._bank.device != device:
            colors = list(NOISE_EXPONENTS) if self.color == "random" else [self.color]
            exponents = torch.tensor([NOISE_EXPONENTS[c] for c in colors], device=device)
            rows = colored_noise((len(colors), 1, self.bank_samples), exponents, device, self.generator(device))
            self._bank = rows[:, 0]
        return self._bank

    def _draw(self, x, n, device, meta):
        bank = self.bank(device)
        row = torch.randint(0, bank.shape[0], (n, 1), device=device, generator=self.generator(device))
        offset = torch.randint(0, self.bank_samples, (n, x.shape[1]), device=device, generator=self.generator(device))
        return {
            "snr_db": self.uniform((n,), self.min_snr_db, self.max_snr_db, device),
            "row": row.expand_as(offset),
            "offset": offset,
            "lengths": meta.get("lengths"),
        }

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
        out = excerpts(bank.flatten(), start, torch.full_like(start, period), offset.flatten(), length)
        return out.view(*offset.shape, length)

    def _apply_batched(self, x, snr_db, row, offset, lengths):
        """One pass over the batch (no host sync): gather the excerpts, remove their mean, scale, add."""
        mask = length_mask(x, lengths)
        noise = self.noise(row, offset, x.shape[-1])
        # no DC offset in the clip (a brown excerpt drifts): remove the mean over the real samples
        if mask is None:
            noise -= noise.mean(dim=-1, keepdim=True)
        else:
            noise -= (noise * mask).sum(dim=-1, keepdim=True) / mask.sum(dim=-1, keepdim=True).clamp_min(1)
        # noise RMS over the real samples; 0 where snr is +inf (not augmented) or the clip is silent
        scale = rms(x, mask) / (rms(noise, mask).clamp_min(1e-12) * torch.pow(10.0, snr_db / 20.0))
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
            means = [looped_sum(sums[r], pos, size, period) / size for r, pos in zip(rows, starts)]
            noise_power = (
                sum(looped_sum(squares[r], pos, size, period) / size - m * m for r, pos, m in zip(rows, starts, means))
                / channels
            )
            scale = math.sqrt(power / max(noise_power, 1e-24)) * 10.0 ** (-snr / 20.0)
            for c, (r, pos) in enumerate(zip(rows, starts)):
                for at, piece in excerpt_pieces(bank[r], pos, size):
                    torch.add(
                        clip[c, at : at + piece.numel()], piece, alpha=scale, out=out[i, c, at : at + piece.numel()]
                    )
                out[i, c, :size].sub_(scale * means[c])
            if size < length:  # the padding of a padded batch
                out[i, :, size:].copy_(x[i, :, size:])
        return out

    def _running_sums(self, bank: torch.Tensor) -> list:
        """Running sums of the CPU ``bank`` and of its squares (``functional.noise.running_sums``), cached with it:
        an excerpt's mean and power in O(1). Twice the bank's memory; an excerpt's power is exact to about 1e-6."""
        if self._sums is None or self._sums[0] is not bank:
            self._sums = (bank, running_sums(bank))
        return self._sums[1]


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
        >>> AddBackground("data", 3, 30, p=0.5).files[0].name
        'high_0.wav'
    """

    identity = {"snr_db": math.inf}

    def __init__(
        self,
        source,
        min_snr_db: float = 3.0,
        max_snr_db: float = 30.0,
        max_seconds: float = 600.0,
        p: float = 0.5,
        seed: int | None = None,
    ):
        from ...files import get_audio_files

        super().__init__(p, seed)
        self.min_snr_db, self.max_snr_db = check_range("snr_db", min_snr_db, max_snr_db)
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
            from ...io import load_audio

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

    def _draw(self, x, n, device, meta):
        audio, starts, lengths = self.bank(self._rate(meta), device)
        which = torch.randint(0, len(lengths), (n,), device=device, generator=self.generator(device))
        offset = (self.uniform((n,), 0.0, 1.0, device) * lengths[which]).long()
        background = excerpts(audio, starts[which], lengths[which], offset, x.shape[-1])  # a short one loops
        background = background[:, None, :].expand(-1, x.shape[1], -1)
        return {"snr_db": self.uniform((n,), self.min_snr_db, self.max_snr_db, device), "background": background}

    def apply(self, x, snr_db, background):
        scale = rms(x) / (rms(background).clamp_min(1e-12) * torch.pow(10.0, snr_db / 20.0))
        return x + (background * scale[:, None, None]).to(x.dtype)
