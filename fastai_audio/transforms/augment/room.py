"""``RandomReverb``: the clip played in a room, by FFT convolution with a bank of synthetic impulse responses."""

from __future__ import annotations

import math

import torch
from scipy.fft import next_fast_len

from ..._validate import check_positive, check_sample_rate
from ...functional.room import fft_convolve, synthetic_rir
from .base import AudioAugment, batch_meta, check_range

__all__ = ["RandomReverb"]


class RandomReverb(AudioAugment):
    """Add a room's reverberation to each clip: the clip convolved (by FFT) with one of a bank of synthetic room
    impulse responses, mixed under the dry clip at a random direct-to-reverberant ratio.

    The bank holds ``n_rirs`` diffuse tails (:func:`fastai_audio.functional.room.synthetic_rir`: exponentially
    decaying noise whose highs die out faster), with reverberation times log-uniform in ``[min_rt60, max_rt60]``
    seconds and pre-delays up to 20 ms; it is drawn once per device and rate, like ``AddNoise``'s noise bank, and
    its spectra are cached per clip length, so a batch costs one FFT of the clips each way. Each clip picks a tail
    and a direct-to-reverberant ratio (DRR) uniform in ``[min_drr_db, max_drr_db]``: 0 dB is a far microphone in a
    live room, 15 dB a close one. The tail past the clip's end is cut, so the length is kept.

    Args:
        min_rt60, max_rt60: range of reverberation times (s); the bank's tails are ``max_rt60`` long.
        min_drr_db, max_drr_db: range of direct-to-reverberant ratios (dB).
        n_rirs: tails in the bank.
        sample_rate: the audio's rate when the input is a plain tensor (``TensorAudio`` carries its own).
        p, seed: see ``AudioAugment``.

    Examples:
        >>> tfm = RandomReverb(0.2, 0.8, p=1.0, seed=0)
        >>> x = TensorAudio(torch.randn(4, 1, 16000), sample_rate=16000)
        >>> y = tfm(x, split_idx=0)                              # training batches only
        >>> y.shape, sorted(tfm.last_params)
        (torch.Size([4, 1, 16000]), ['drr_db', 'rir', 'sample_rate'])
    """

    identity = {"drr_db": math.inf}  # an infinitely dry mix: no reverb

    def __init__(
        self,
        min_rt60: float = 0.2,
        max_rt60: float = 1.0,
        min_drr_db: float = 0.0,
        max_drr_db: float = 15.0,
        n_rirs: int = 32,
        sample_rate: int | None = None,
        p: float = 0.5,
        seed: int | None = None,
    ):
        super().__init__(p, seed)
        self.min_rt60, self.max_rt60 = check_range("rt60", min_rt60, max_rt60)
        check_positive("min_rt60", self.min_rt60)
        self.min_drr_db, self.max_drr_db = check_range("drr_db", min_drr_db, max_drr_db)
        self.n_rirs = check_positive("n_rirs", n_rirs, integer=True)
        self.sample_rate = check_sample_rate(sample_rate, allow_none=True)
        self._banks, self._spectra = {}, {}

    def __getstate__(self):
        state = super().__getstate__()
        state.update(_banks={}, _spectra={})
        return state

    def bank(self, device, sample_rate: int) -> torch.Tensor:
        """``(n_rirs, max_rt60 * sample_rate)`` tails of unit energy (no direct path) on ``device``, drawn once."""
        key = (torch.device(device), int(sample_rate))
        if key not in self._banks:
            gen = self.generator(device)
            u = torch.rand(self.n_rirs, device=device, generator=gen)
            rt60 = torch.exp(math.log(self.min_rt60) + u * (math.log(self.max_rt60) - math.log(self.min_rt60)))
            predelay = 0.02 * torch.rand(self.n_rirs, device=device, generator=gen)
            length = max(2, int(round(self.max_rt60 * sample_rate)))
            rirs = synthetic_rir(rt60, sample_rate, length, predelay=predelay, generator=gen)
            rirs[:, 0] = 0.0  # the tail alone: the dry clip is the direct path
            self._banks[key] = rirs / rirs.pow(2).sum(-1, keepdim=True).sqrt().clamp_min(1e-12)
        return self._banks[key]

    def spectra(self, device, sample_rate: int, samples: int) -> tuple[torch.Tensor, int]:
        """The bank's ``rfft`` for clips of ``samples`` ``(n_rirs, n_fft // 2 + 1)``, and that ``n_fft``."""
        key = (torch.device(device), int(sample_rate), int(samples))
        if key not in self._spectra:
            bank = self.bank(device, sample_rate)
            n_fft = next_fast_len(samples + bank.shape[-1] - 1, real=True)
            if len(self._spectra) > 8:  # many clip lengths (variable-length batches): keep the cache small
                self._spectra.clear()
            self._spectra[key] = (torch.fft.rfft(bank, n=n_fft), n_fft)
        return self._spectra[key]

    def _draw(self, x, n, device, meta):
        rir = torch.randint(0, self.n_rirs, (n,), device=device, generator=self.generator(device))
        return {
            "rir": rir,
            "drr_db": self.uniform((n,), self.min_drr_db, self.max_drr_db, device),
            "sample_rate": self._rate(meta),
        }

    def apply(self, x, rir, drr_db, sample_rate: int | None = None):
        """``x + 10 ** (-drr_db / 20) * (x convolved with tail rir)`` for each item of ``(B, C, samples)``:
        ``rir`` ``(B,)`` indexes the bank, ``drr_db`` ``(B,)`` (``inf``: the clip unchanged)."""
        sample_rate = sample_rate or self._rate(batch_meta(x))
        spectra, n_fft = self.spectra(x.device, sample_rate, x.shape[-1])
        wet = torch.pow(10.0, -drr_db.float() / 20.0).to(x.dtype)  # 0 for an infinite DRR
        return x + wet[:, None, None] * fft_convolve(x, spectra[rir], n_fft)
