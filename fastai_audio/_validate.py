"""One validator for parameters and in-memory signals, used by every public entry point.

Importing it costs no torch (the torch-free runtime checks its parameters here too); ``valid_audio``, which checks
tensors, imports torch when it runs."""

from __future__ import annotations

import math

import numpy as np

from .errors import ParameterError

__all__ = ["valid_audio", "check_positive", "check_choice", "check_sample_rate"]


def check_positive(name: str, value, *, allow_none: bool = False, integer: bool = False):
    """Return ``value`` if it is a finite number > 0, else raise ``ParameterError`` naming it."""
    if value is None and allow_none:
        return value
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value) == int(value)
    if not ok or not math.isfinite(float(value)) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ParameterError(f"{name} must be {kind}, got {value!r}")
    return int(value) if integer else value


def check_sample_rate(value, *, name: str = "sample_rate", allow_none: bool = False):
    """A sample rate is a positive integer number of samples per second (e.g. 16000)."""
    return check_positive(name, value, allow_none=allow_none, integer=True)


def check_choice(name: str, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise ``ParameterError`` listing them."""
    if value not in choices:
        raise ParameterError(f"{name} must be one of {sorted(choices)!r}, got {value!r}")
    return value


def valid_audio(x, *, source=None, min_samples: int = 1):
    """Check that ``x`` is a usable float waveform of shape ``(..., channels, samples)`` or ``(samples,)``.

    Checks the dtype (floating point), the length (at least ``min_samples``) and that every value is finite.
    Returns ``x`` unchanged so it can be used inline. ``source`` names where the signal came from in messages.

    Examples:
        >>> valid_audio(torch.zeros(1, 16000)).shape
        torch.Size([1, 16000])
        >>> valid_audio(torch.tensor([0.0, float("nan")]), source="a test")
        Traceback (most recent call last):
        ...
        fastai_audio.errors.ParameterError: audio in a test holds 1 NaN/Inf samples; clean or drop the clip
    """
    import torch

    where = f" in {source}" if source is not None else ""
    if not isinstance(x, torch.Tensor):
        raise ParameterError(f"audio must be a torch.Tensor, got {type(x).__name__}{where}")
    if not x.is_floating_point():
        raise ParameterError(
            f"audio must be floating point, got {x.dtype}{where}; convert with x.float() (scale ints to [-1, 1])"
        )
    if x.ndim == 0 or x.shape[-1] < min_samples:
        raise ParameterError(
            f"audio{where} has {0 if x.ndim == 0 else x.shape[-1]} samples, at least {min_samples} are needed"
        )
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ParameterError(f"audio{where} holds {bad} NaN/Inf samples; clean or drop the clip")
    return x
