"""Random low- and high-pass filters, on the waveform's FFT or as a gain per row of a spectrogram."""

from __future__ import annotations

import math

import torch

from ..._validate import check_choice, check_positive, check_sample_rate
from ...core import TensorAudio, TensorSpectrogram, _row_frequencies
from ...errors import ParameterError
from ...functional.filters import butterworth_gain, fft_filter
from ..spectral import _as_batch, _as_spec_batch
from .base import AudioAugment, check_range

__all__ = ["RandomHighpass", "RandomLowpass"]

_AXIS_KEYS = ("scale", "sample_rate", "n_fft", "f_min", "f_max", "mel_scale", "bins_per_octave")


class _RandomFilter(AudioAugment):
    """Zero-phase Butterworth-shaped filter, one cutoff per clip: on the FFT of a waveform ``(B, C, samples)``, or
    as a gain per row of a power or magnitude spectrogram ``(B, C, freq, frames)``, whichever it is given.

    The draw carries what ``apply`` needs to know about the batch: the waveform's ``sample_rate``, or the
    spectrogram's row frequencies ``freqs`` and ``power``."""

    identity = {"cutoff": math.nan}
    highpass = False
    accepts = (TensorAudio, TensorSpectrogram)

    def __init__(self, min_cutoff: float, max_cutoff: float, order: int = 4, sample_rate: int | None = None,
                 p: float = 0.5, seed: int | None = None, domain: str = "waveform"):  # fmt: skip
        super().__init__(p, seed)
        self.min_cutoff, self.max_cutoff = check_range("cutoff", min_cutoff, max_cutoff)
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

    def _as_batch(self, x, meta):
        return _as_spec_batch(x) if "scale" in meta else _as_batch(x)

    def _draw(self, x, n, device, meta):
        params = {"cutoff": self.uniform((n,), self.min_cutoff, self.max_cutoff, device)}
        if x.ndim == 4:
            params["freqs"], params["power"] = self._rows(x, meta)
        else:
            params["sample_rate"] = self._rate(meta)
        return params

    def gain(self, cutoff: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        """Magnitude response ``(B, F)`` at the frequencies ``freqs`` ``(F,)`` in Hz (1 where ``cutoff`` is NaN)."""
        return butterworth_gain(freqs, cutoff, self.filter_order, highpass=self.highpass)

    def response(self, cutoff: torch.Tensor, n_samples: int, sample_rate: int) -> torch.Tensor:
        """Magnitude response ``(B, n_samples // 2 + 1)`` on the rfft grid of a clip of ``n_samples``."""
        return self.gain(cutoff, torch.fft.rfftfreq(n_samples, d=1.0 / sample_rate).to(cutoff.device))

    def apply(self, x, cutoff, sample_rate: int | None = None, freqs=None, power: float | None = None):
        """Filter ``x`` with one ``cutoff`` (Hz) per item: a waveform ``(B, C, samples)`` at ``sample_rate`` (default:
        the transform's), or a spectrogram ``(B, C, freq, frames)`` whose rows are at ``freqs`` (Hz) and hold the
        magnitude to ``power`` (both default to what a ``TensorSpectrogram`` ``x`` says of itself)."""
        if x.ndim == 4:  # a spectrogram: each row times the response at its frequency (to the spectrogram's power)
            if freqs is None or power is None:
                freqs, power = self._rows(x, x.__dict__)
            return x * self.gain(cutoff, freqs).pow(power)[:, None, :, None].to(x.dtype)
        sample_rate = sample_rate or self._rate(x.__dict__ if isinstance(x, TensorAudio) else {})
        return fft_filter(x, self.response(cutoff, x.shape[-1], sample_rate))

    def _rows(self, x, meta: dict) -> tuple[torch.Tensor, float]:
        """The centre frequencies (Hz) ``(freq,)`` of the rows of the spectrogram ``x`` with metadata ``meta`` (cached
        per device), and its power (2 or 1)."""
        name = type(self).__name__
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


class RandomLowpass(_RandomFilter):
    """Low-pass each clip at a random cutoff (Hz): a duller microphone or a muffled room.

    The response is Butterworth's magnitude, ``1 / sqrt(1 + (f / cutoff) ** (2 * order))``, with zero phase
    (:func:`fastai_audio.functional.butterworth_gain`). ``domain='waveform'`` applies it to the FFT of the clip
    ``(B, C, samples)`` (one batched FFT each way, any cutoff per clip). ``domain='spectrogram'`` runs right after
    the spectrogram transform instead (``order`` 25, before ``AmplitudeToDB``) and multiplies each row of the power
    or magnitude spectrogram ``(B, C, freq, frames)`` by the response at the row's centre frequency: about a hundred
    times cheaper, and within 0.5 dB of filtering the waveform for the default low-pass cutoffs on a 64-band mel
    spectrogram (the approximation assumes the response is flat across a band; it is coarsest where the response is
    steep and bands are wide). A waveform reaching a spectrogram-domain filter, in a pipeline without a
    spectrogram, is still filtered on its FFT.

    Args:
        min_cutoff, max_cutoff: cutoff range (Hz).
        order: the Butterworth order: steepness, about ``6 * order`` dB per octave (not the pipeline's ``order``).
        sample_rate: the audio's rate when the input is a plain tensor (``TensorAudio`` carries its own).
        p, seed: see ``AudioAugment``.
        domain: ``'waveform'`` or ``'spectrogram'`` (see above).

    Examples:
        >>> RandomLowpass(1000, 4000, p=0.3).domain                       # on the waveform
        'waveform'
        >>> [type(t).__name__ for t in sorted([*mel_transforms("nsynth"), RandomLowpass(domain="spectrogram")],
        ...                                   key=lambda t: t.order)]
        ['MelSpectrogram', 'RandomLowpass', 'AmplitudeToDB', 'SpecNormalize']
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
        >>> RandomHighpass(50, 400, p=0.3).highpass
        True
    """

    highpass = True

    def __init__(self, min_cutoff: float = 40.0, max_cutoff: float = 400.0, order: int = 4,
                 sample_rate: int | None = None, p: float = 0.5, seed: int | None = None,
                 domain: str = "waveform"):  # fmt: skip
        super().__init__(min_cutoff, max_cutoff, order, sample_rate, p, seed, domain)
