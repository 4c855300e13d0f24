"""Random low- and high-pass filters and a random equaliser, on the waveform's FFT or as a gain per row of a
spectrogram."""

from __future__ import annotations

import math

import torch

from ..._validate import check_choice, check_positive, check_sample_rate
from ...core import TensorAudio, TensorSpectrogram, row_frequencies
from ...errors import ParameterError
from ...functional.filters import butterworth_gain, fft_filter
from ...functional.room import eq_gain_db
from ..spectral import as_audio_batch, as_spec_batch
from .base import AudioAugment, check_range

__all__ = ["RandomEQ", "RandomHighpass", "RandomLowpass"]

_AXIS_KEYS = ("scale", "sample_rate", "n_fft", "f_min", "f_max", "mel_scale", "bins_per_octave")


class _FrequencyResponse(AudioAugment):
    """A random zero-phase magnitude response per clip: on the FFT of a waveform ``(B, C, samples)``, or as a gain
    per row of a power or magnitude spectrogram ``(B, C, freq, frames)``, whichever it is given.

    Subclasses draw the response's parameters (``_draw_response``) and compute it (``gain``). The draw also
    carries what ``apply`` needs to know about the batch: the waveform's ``sample_rate``, or the spectrogram's row
    frequencies ``freqs`` and ``power``."""

    accepts = (TensorAudio, TensorSpectrogram)

    def __init__(self, sample_rate: int | None, p: float, seed: int | None, domain: str):
        super().__init__(p, seed)
        self.domain = check_choice("domain", domain, ("waveform", "spectrogram"))
        if domain == "spectrogram":
            self.order = 25  # after the spectrogram (20), before AmplitudeToDB (30)
        self.sample_rate = check_sample_rate(sample_rate, allow_none=True)
        self._freqs = {}

    def __getstate__(self):
        state = super().__getstate__()
        state["_freqs"] = {}
        return state

    def as_audio_batch(self, x, meta):
        return as_spec_batch(x) if "scale" in meta else as_audio_batch(x)

    def _draw_response(self, n: int, device) -> dict:
        raise NotImplementedError

    def gain(self, *args, **kwargs) -> torch.Tensor:
        raise NotImplementedError

    def _draw(self, x, n, device, meta):
        params = self._draw_response(n, device)
        if x.ndim == 4:
            params["freqs"], params["power"] = self._rows(x, meta)
        else:
            params["sample_rate"] = self._rate(meta)
        return params

    def _apply_response(self, x, params: dict, sample_rate, freqs, power):
        if x.ndim == 4:  # a spectrogram: each row times the response at its frequency (to the spectrogram's power)
            if freqs is None or power is None:
                freqs, power = self._rows(x, x.__dict__)
            return x * self.gain(**params, freqs=freqs).pow(power)[:, None, :, None].to(x.dtype)
        sample_rate = sample_rate or self._rate(x.__dict__ if isinstance(x, TensorAudio) else {})
        freqs = torch.fft.rfftfreq(x.shape[-1], d=1.0 / sample_rate).to(x.device)
        return fft_filter(x, self.gain(**params, freqs=freqs))

    def _rows(self, x, meta: dict) -> tuple[torch.Tensor, float]:
        """The centre frequencies (Hz) ``(freq,)`` of the rows of the spectrogram ``x`` with metadata ``meta`` (cached
        per device), and its power (2 or 1)."""
        name = type(self).__name__
        if meta.get("db") or meta.get("normalized") or "power" not in meta:
            raise ParameterError(
                f"{name} filters a power or magnitude spectrogram, before AmplitudeToDB and SpecNormalize; it got one "
                f"that is {'in dB' if meta.get('db') else 'normalised' if meta.get('normalized') else 'unlabelled'}"
                f": use {name}(domain='spectrogram'), which runs right after the spectrogram, or domain='waveform'"
            )
        key = (x.device, x.shape[-2], *(meta.get(k) for k in _AXIS_KEYS))
        if key not in self._freqs:
            freqs = row_frequencies(meta, x.shape[-2])
            if freqs is None:
                raise ParameterError(
                    f"{name} cannot tell the frequency of the rows of a {meta.get('scale')!r} "
                    "spectrogram; filter the waveform (domain='waveform')"
                )
            self._freqs[key] = torch.as_tensor(freqs, dtype=torch.float32, device=x.device)
        return self._freqs[key], float(meta["power"])


class _RandomFilter(_FrequencyResponse):
    """Zero-phase Butterworth-shaped filter, one cutoff per clip (see ``_FrequencyResponse`` for the domains)."""

    identity = {"cutoff": math.nan}
    highpass = False

    def __init__(
        self,
        min_cutoff: float,
        max_cutoff: float,
        order: int = 4,
        sample_rate: int | None = None,
        p: float = 0.5,
        seed: int | None = None,
        domain: str = "waveform",
    ):
        super().__init__(sample_rate, p, seed, domain)
        self.min_cutoff, self.max_cutoff = check_range("cutoff", min_cutoff, max_cutoff)
        check_positive("min_cutoff", self.min_cutoff)
        # (not ``self.order``: that is the transform's place in fastai's pipeline)
        self.filter_order = check_positive("order", order, integer=True)

    def _draw_response(self, n, device):
        return {"cutoff": self.uniform((n,), self.min_cutoff, self.max_cutoff, device)}

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
        return self._apply_response(x, {"cutoff": cutoff}, sample_rate, freqs, power)


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

    def __init__(
        self,
        min_cutoff: float = 1500.0,
        max_cutoff: float = 7500.0,
        order: int = 4,
        sample_rate: int | None = None,
        p: float = 0.5,
        seed: int | None = None,
        domain: str = "waveform",
    ):
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

    def __init__(
        self,
        min_cutoff: float = 40.0,
        max_cutoff: float = 400.0,
        order: int = 4,
        sample_rate: int | None = None,
        p: float = 0.5,
        seed: int | None = None,
        domain: str = "waveform",
    ):
        super().__init__(min_cutoff, max_cutoff, order, sample_rate, p, seed, domain)


class RandomEQ(_FrequencyResponse):
    """A random equaliser per clip: a spectral tilt and a few bell-shaped boosts or cuts, the colour that a
    microphone, its distance and angle, a room, or another maker's instrument sample put on a sound.

    The response in dB is ``tilt * log2(f / 1000)`` plus ``bands`` Gaussian bells on the log-frequency axis
    (:func:`fastai_audio.functional.room.eq_gain_db`), zero phase. Tilts are uniform in ``±max_tilt_db`` dB per
    octave, band centres log-uniform in ``[min_freq, max_freq]`` Hz, band gains uniform in ``±max_gain_db``, band
    widths uniform in ``[0.3, 1.5]`` octaves. Like ``RandomLowpass`` it works on the waveform's FFT
    (``domain='waveform'``) or, a hundred times cheaper, as a gain per row of the power or magnitude spectrogram
    (``domain='spectrogram'``: it then runs right after the spectrogram, ``order`` 25); with
    ``AmplitudeToDB(ref='max')`` an overall level change is undone, so only the shape of the curve matters.

    Args:
        max_tilt_db: largest tilt (dB per octave, either sign).
        bands: bell bands per clip (0: tilt only).
        max_gain_db: largest gain of a band (dB, either sign).
        min_freq, max_freq: range of the band centres (Hz).
        sample_rate: the audio's rate when the input is a plain tensor (``TensorAudio`` carries its own).
        p, seed: see ``AudioAugment``.
        domain: ``'spectrogram'`` (default) or ``'waveform'``.

    Examples:
        >>> tfm = RandomEQ(max_tilt_db=3, bands=2, p=1.0, seed=0)
        >>> mel = mel_transforms("nsynth", normalize=None, decibels=False)[0]
        >>> spec = mel(TensorAudio(torch.randn(4, 1, 16000), sample_rate=16000))
        >>> out = tfm(spec, split_idx=0)                        # training batches only
        >>> out.shape, tfm.last_params["gains"].shape, bool((tfm.last_params["tilt"].abs() <= 3).all())
        (torch.Size([4, 1, 64, 63]), torch.Size([4, 2]), True)
    """

    identity = {"tilt": 0.0, "gains": 0.0}

    def __init__(
        self,
        max_tilt_db: float = 2.0,
        bands: int = 2,
        max_gain_db: float = 6.0,
        min_freq: float = 100.0,
        max_freq: float = 6000.0,
        sample_rate: int | None = None,
        p: float = 0.5,
        seed: int | None = None,
        domain: str = "spectrogram",
    ):
        super().__init__(sample_rate, p, seed, domain)
        self.max_tilt_db = check_range("max_tilt_db", 0.0, max_tilt_db)[1]
        if not isinstance(bands, int) or isinstance(bands, bool) or bands < 0:
            raise ParameterError(f"bands must be an int >= 0 (bell bands per clip), got {bands!r}")
        self.bands = bands
        self.max_gain_db = check_range("max_gain_db", 0.0, max_gain_db)[1]
        self.min_freq, self.max_freq = check_range("band frequency", min_freq, max_freq)
        check_positive("min_freq", self.min_freq)

    def _draw_response(self, n, device):
        k = self.bands
        log_f = self.uniform((n, k), math.log(self.min_freq), math.log(self.max_freq), device)
        return {
            "tilt": self.uniform((n,), -self.max_tilt_db, self.max_tilt_db, device),
            "centers": log_f.exp(),
            "gains": self.uniform((n, k), -self.max_gain_db, self.max_gain_db, device),
            "widths": self.uniform((n, k), 0.3, 1.5, device),
        }

    def gain(self, tilt, centers, gains, widths, freqs) -> torch.Tensor:
        """Magnitude response ``(B, F)`` at ``freqs`` ``(F,)`` Hz (1 everywhere for an identity draw)."""
        return torch.pow(10.0, eq_gain_db(freqs, tilt, centers, gains, widths) / 20.0)

    def apply(
        self, x, tilt, centers, gains, widths, sample_rate: int | None = None, freqs=None, power: float | None = None
    ):
        """Equalise ``x``: a waveform ``(B, C, samples)`` or a spectrogram ``(B, C, freq, frames)``, with one tilt
        ``(B,)`` and ``(B, bands)`` centres, gains and widths per item (see ``RandomLowpass.apply`` for the rest)."""
        params = {"tilt": tilt, "centers": centers, "gains": gains, "widths": widths}
        return self._apply_response(x, params, sample_rate, freqs, power)
