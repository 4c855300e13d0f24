"""``AudioAugment``: the base of every augmentation. Per-item random draws (``draw``), a deterministic ``apply``,
training set only, on the batch's device."""

from __future__ import annotations

import math

import torch

from ...core import TensorAudio, TensorSpectrogram
from ...errors import ParameterError
from ..base import TypedTransform
from ..spectral import as_audio_batch

__all__ = ["AudioAugment"]


def check_range(name: str, low: float, high: float) -> tuple[float, float]:
    """``(low, high)`` as floats if they are finite and ``low <= high``; else a ``ParameterError`` naming them."""
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ParameterError(f"{name}: the range ({low}, {high}) is empty or not finite; give min <= max")
    return float(low), float(high)


def check_p(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ParameterError(f"p is the probability of augmenting a clip: it must be in [0, 1], got {p}")
    return float(p)


def batch_meta(x) -> dict:
    """The metadata of a ``TensorAudio`` or ``TensorSpectrogram`` batch (``sample_rate``, ``lengths``, the axes...);
    ``{}`` for a plain tensor."""
    return x.__dict__ if isinstance(x, (TensorAudio, TensorSpectrogram)) else {}


class AudioAugment(TypedTransform):
    """Base class: per-item random draws (``draw``) and a deterministic ``apply``, on the training set only.

    Subclasses implement ``_draw(x, n, device, meta) -> dict``: the parameters of all ``n`` items of the plain batch
    ``x``, given the batch's metadata ``meta`` (``sample_rate``, ``lengths``...); what ``apply`` needs to know about
    the batch goes into the parameters too. The base class resets the items that are not augmented to ``identity``.
    ``apply(x, **params)`` works on a plain tensor and depends on its arguments alone.

    Args:
        p: probability that a clip is augmented.
        seed: an int for a private generator (reproducible whatever else uses torch's RNG); None for torch's.

    Examples:
        >>> class Louder(AudioAugment):
        ...     identity = {"gain": 1.0}
        ...     def _draw(self, x, n, device, meta):
        ...         return {"gain": self.uniform((n,), 1.0, 2.0, device)}
        ...     def apply(self, x, gain):
        ...         return x * gain[:, None, None]
        >>> tfm = Louder(p=0.5, seed=0)
        >>> params = tfm.draw(torch.ones(6, 1, 10))       # one gain per clip; 1.0 where a clip is left alone
        >>> params["gain"].shape, bool(((params["gain"] >= 1) & (params["gain"] < 2)).all())
        (torch.Size([6]), True)
        >>> torch.equal(tfm.apply(torch.ones(6, 1, 10), **params)[:, 0, 0], params["gain"])
        True
    """

    split_idx = 0  # training set only
    order = 10
    accepts = (TensorAudio,)
    plain_tensors = True
    identity: dict = {}
    subset_on_cpu = True  # on a CPU, draw and apply for the chosen clips only (see ``_encode_subset``)

    def __init__(self, p: float = 0.5, seed: int | None = None):
        super().__init__()
        self.p, self.seed = check_p(p), seed
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
    def draw(self, x: torch.Tensor, meta: dict | None = None) -> dict:
        """Parameters for every item of the batch ``x`` (the items not augmented, probability ``1 - p``, get the
        identity). ``meta`` is the batch's metadata (default: ``x``'s own, for a ``TensorAudio`` or
        ``TensorSpectrogram``)."""
        meta = batch_meta(x) if meta is None else meta
        n, device = x.shape[0], x.device
        params = self._draw(x, n, device, meta)
        keep = self.uniform((n,), 0.0, 1.0, device) >= self.p
        for name, value in self.identity.items():
            shape = (n,) + (1,) * (params[name].ndim - 1)
            params[name] = torch.where(
                keep.view(shape), torch.as_tensor(value, dtype=params[name].dtype, device=device), params[name]
            )
        return params

    def _draw(self, x, n: int, device, meta: dict) -> dict:
        raise NotImplementedError

    def apply(self, x: torch.Tensor, **params) -> torch.Tensor:
        """Apply the given parameters (one value per item) to a batch; deterministic."""
        raise NotImplementedError

    def as_audio_batch(self, x: torch.Tensor, meta: dict) -> torch.Tensor:
        return as_audio_batch(x)  # (B, C, samples)

    def _encode(self, x):
        plain, meta = x.as_subclass(torch.Tensor), batch_meta(x)
        batch = self.as_audio_batch(plain, meta)
        # a waveform on a CPU: process the chosen clips only (a spectrogram's masks and gains per row cost less
        # than picking the chosen clips out and putting them back)
        if batch.device.type == "cpu" and batch.ndim == 3 and self.p < 1 and self.subset_on_cpu:
            out = self._encode_subset(batch, meta)
        else:
            self.last_params = params = self.draw(batch, meta)
            out = self.apply(batch, **params)
        out = out.reshape(plain.shape)
        if isinstance(x, (TensorAudio, TensorSpectrogram)):
            out = out.as_subclass(type(x))
            out.__dict__.update(x.__dict__)
        return out

    def _encode_subset(self, batch: torch.Tensor, meta: dict) -> torch.Tensor:
        """On a CPU, where choosing items costs no device sync, draw and apply for the chosen items only (the
        work then scales with ``p``); ``last_params`` holds their ``index`` and their parameters."""
        chosen = (self.uniform((batch.shape[0],), 0.0, 1.0, batch.device) < self.p).nonzero().flatten()
        if meta.get("lengths") is not None:
            meta = {**meta, "lengths": torch.as_tensor(meta["lengths"])[chosen]}
        if len(chosen) == 0:  # (no draw: some draws, e.g. an FFT of noise, are undefined on an empty batch)
            self.last_params = {"index": chosen}
            return batch
        sub = batch.index_select(0, chosen)  # (three times faster than batch[chosen] on a CPU)
        params = self._draw(sub, len(chosen), batch.device, meta)
        self.last_params = {"index": chosen, **params}
        out = batch.clone()
        out[chosen] = self.apply(sub, **params)
        return out

    def _rate(self, meta: dict) -> int:
        """The rate of the batch being augmented (``TensorAudio``), else the ``sample_rate`` the transform got."""
        sr = meta.get("sample_rate") or getattr(self, "sample_rate", None)
        if sr is None:
            raise ParameterError(
                f"{type(self).__name__} needs the audio's rate: pass a TensorAudio, or build it with sample_rate=<Hz>"
            )
        return int(sr)
