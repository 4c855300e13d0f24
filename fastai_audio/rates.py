"""The rate pair a resampler builds its windowed-sinc kernel for, with the kernel's memory bounded.

A sinc resampler from ``orig`` to ``new`` Hz works on the pair reduced by their greatest common divisor; its kernel
has ``new * (2 * width + orig)`` values. For the rates recordings have (8 to 192 kHz, multiples of 1,000 or of
11,025) that is at most a few hundred thousand values. A corrupt or hostile header can give any rate, and a pair such
as 65,587 -> 16,000 Hz (prime to each other) would need a kernel of a billion values (4 GB). Past ``MAX_KERNEL``
values, the resamplers (``fastai_audio.io.resample`` and the runtime's ``resample_np``) use instead the closest
ratio whose kernel fits (continued fractions: a relative error in pitch below ``1e-3``, under 2 cents, and about
``1e-6`` for such a pair) and then crop or pad the result to the exact length the true ratio gives; a ratio no
kernel of that size can serve (1 Hz to 768 kHz) is an error. No torch: the runtime shares it.
"""

from __future__ import annotations

import math
from fractions import Fraction

from .errors import ParameterError

__all__ = ["MAX_KERNEL", "kernel_size", "resampling_pair"]

#: The most values a resampling kernel may have: 2**21 float32 values, 8 MB.
MAX_KERNEL = 1 << 21
#: torchaudio's defaults (sinc_interp_hann), which both resamplers use.
LOWPASS_WIDTH, ROLLOFF = 6, 0.99


def kernel_size(orig: int, new: int) -> int:
    """Values in the windowed-sinc kernel for the reduced rate pair ``orig -> new`` (torchaudio's layout)."""
    width = math.ceil(LOWPASS_WIDTH * orig / (min(orig, new) * ROLLOFF))
    return new * (2 * width + orig)


def resampling_pair(orig_rate: int, new_rate: int) -> tuple[int, int]:
    """The pair to build the kernel for: ``(orig_rate, new_rate)`` reduced by their gcd or, where that kernel would
    exceed ``MAX_KERNEL`` values, the closest ratio whose kernel fits.

    Examples:
        >>> resampling_pair(44100, 16000)                  # 441 -> 160: exact
        (441, 160)
        >>> orig, new = resampling_pair(65587, 16000)       # prime to each other: the closest ratio that fits
        >>> kernel_size(orig, new) <= MAX_KERNEL, abs(new / orig / (16000 / 65587) - 1) < 1e-5
        (True, True)
    """
    g = math.gcd(int(orig_rate), int(new_rate))
    orig, new = int(orig_rate) // g, int(new_rate) // g
    if kernel_size(orig, new) <= MAX_KERNEL:
        return orig, new
    ratio = Fraction(int(new_rate), int(orig_rate))
    limit = orig
    while limit > 1:
        approx = ratio.limit_denominator(limit)
        if approx.numerator >= 1 and kernel_size(approx.denominator, approx.numerator) <= MAX_KERNEL:
            return approx.denominator, approx.numerator
        limit //= 2
    raise ParameterError(
        f"cannot resample from {orig_rate} Hz to {new_rate} Hz within bounded memory (a ratio of "
        f"{new_rate / orig_rate:.3g}); recordings have rates between 1 kHz and 768 kHz"
    )


def resampled_length(samples: int, orig_rate: int, new_rate: int) -> int:
    """Samples after resampling ``samples`` from ``orig_rate`` to ``new_rate`` Hz: ``ceil(samples * new / orig)``."""
    g = math.gcd(int(orig_rate), int(new_rate))
    return -(-samples * (int(new_rate) // g) // (int(orig_rate) // g))
