"""Timbre randomization for ``synth_nsynth``: vary each rendered note the way real instruments, players and rooms
vary, so that a model learns instrument families rather than one soundfont's recordings.

Every note draws its own parameters from a seeded stream of its own (``draw_timbre``), and ``synth_nsynth`` records
them in ``examples.json`` under ``timbre``. The synth plays the note detuned and with vibrato (pitch bend), then
``apply_timbre`` shapes the attack and the release, colours it with an EQ (a spectral tilt and two bell bands), puts
it in a synthetic room, and sets its level.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..functional.room import eq_gain_db, fft_convolve, synthetic_rir

__all__ = ["TIMBRE_RANGES", "draw_timbre", "apply_timbre"]

#: What ``timbre_randomization=1.0`` draws, per note (a smaller strength scales every range towards "unchanged").
TIMBRE_RANGES = {
    "detune_cents": 25.0,  # uniform in +-25 cents: an instrument a little out of tune
    "vibrato_p": 0.5,  # probability of vibrato ...
    "vibrato_hz": (4.0, 7.0),  # ... at this rate ...
    "vibrato_cents": 25.0,  # ... and up to this depth (cents, peak)
    "attack_s": 0.08,  # a fade-in of up to 80 ms: a softer attack
    "release_s": (0.1, 1.0),  # the release fades out within this time after the key is let go (1 s: unchanged)
    "tilt_db_per_octave": 3.0,  # uniform in +-3 dB per octave about 1 kHz: a darker or brighter microphone
    "eq_bands": 2,  # bell bands ...
    "eq_gain_db": 6.0,  # ... of up to +-6 dB ...
    "eq_freq_hz": (100.0, 6000.0),  # ... centred log-uniformly in this range ...
    "eq_width_octaves": (0.3, 1.5),  # ... this wide
    "reverb_p": 0.6,  # probability of a room ...
    "rt60_s": (0.15, 1.2),  # ... with this reverberation time (log-uniform) ...
    "drr_db": (0.0, 15.0),  # ... and direct-to-reverberant ratio
    "gain_db": 12.0,  # a level up to 12 dB lower (never louder, so never clipped)
}

_HELD_S = 3.0


def draw_timbre(rng: np.random.Generator, strength: float) -> dict:
    """One note's variation: a dict of plain floats (JSON-ready), every range scaled by ``strength`` in (0, 1].

    Examples:
        >>> t = draw_timbre(np.random.default_rng(0), 1.0)
        >>> sorted(t)[:6]
        ['attack_s', 'detune_cents', 'drr_db', 'eq', 'gain_db', 'release_s']
        >>> abs(t["detune_cents"]) <= 25 and -12 <= t["gain_db"] <= 0
        True
    """
    r, s = TIMBRE_RANGES, float(strength)

    def sym(limit):
        return float(rng.uniform(-limit, limit) * s)

    vibrato = rng.random() < r["vibrato_p"] * s
    reverb = rng.random() < r["reverb_p"] * s
    low_f, high_f = r["eq_freq_hz"]
    eq = [
        {
            "freq_hz": float(math.exp(rng.uniform(math.log(low_f), math.log(high_f)))),
            "gain_db": sym(r["eq_gain_db"]),
            "width_octaves": float(rng.uniform(*r["eq_width_octaves"])),
        }
        for _ in range(r["eq_bands"])
    ]
    low_rt, high_rt = r["rt60_s"]
    return {
        "detune_cents": sym(r["detune_cents"]),
        "vibrato_hz": float(rng.uniform(*r["vibrato_hz"])) if vibrato else 0.0,
        "vibrato_cents": float(rng.uniform(0, r["vibrato_cents"]) * s) if vibrato else 0.0,
        "attack_s": float(rng.uniform(0, r["attack_s"]) * s),
        "release_s": float(1.0 - rng.uniform(0, 1.0 - r["release_s"][0]) * s),
        "tilt_db_per_octave": sym(r["tilt_db_per_octave"]),
        "eq": eq,
        "rt60_s": float(math.exp(rng.uniform(math.log(low_rt), math.log(high_rt)))) if reverb else 0.0,
        "drr_db": float(rng.uniform(*r["drr_db"])) if reverb else None,
        "rir_seed": int(rng.integers(2**31)),
        "gain_db": float(-rng.uniform(0, r["gain_db"]) * s),
    }


def pitch_bends(timbre: dict, n_blocks: int, block_s: float, bend_range_cents: float = 200.0) -> np.ndarray:
    """The 14-bit MIDI pitch-bend value of each block of the held note (detune plus vibrato), 8192 = no bend.

    Examples:
        >>> pitch_bends({"detune_cents": 100.0, "vibrato_hz": 0.0, "vibrato_cents": 0.0}, 3, 0.01).tolist()
        [12288, 12288, 12288]
    """
    t = np.arange(n_blocks) * block_s
    cents = timbre["detune_cents"] + timbre["vibrato_cents"] * np.sin(2 * np.pi * timbre["vibrato_hz"] * t)
    return np.clip(np.round(8192 + cents / bend_range_cents * 8192), 0, 16383).astype(int)


def apply_timbre(wave: np.ndarray, sample_rate: int, timbre: dict) -> np.ndarray:
    """Shape a rendered 4 s note (mono float32): attack fade-in, faster release, EQ, room; the level is left to
    the caller (after its peak check). Returns float32 of the same length.

    Examples:
        >>> t = draw_timbre(np.random.default_rng(1), 1.0)
        >>> apply_timbre(np.ones(64000, np.float32), 16000, t).shape
        (64000,)
    """
    n = wave.shape[0]
    env = np.ones(n, dtype=np.float64)
    attack = int(timbre["attack_s"] * sample_rate)
    if attack > 1:
        env[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    held = int(_HELD_S * sample_rate)
    release = max(1, int(timbre["release_s"] * sample_rate))
    if held + release < n:  # fade out over release_s after the key is let go, silent after
        env[held : held + release] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(release) / release)
        env[held + release :] = 0.0
    x = torch.from_numpy((wave * env).astype(np.float32))[None, None]
    freqs = torch.fft.rfftfreq(n, d=1.0 / sample_rate)
    eq = timbre["eq"]
    gain_db = eq_gain_db(
        freqs,
        torch.tensor([timbre["tilt_db_per_octave"]]),
        torch.tensor([[b["freq_hz"] for b in eq]]),
        torch.tensor([[b["gain_db"] for b in eq]]),
        torch.tensor([[b["width_octaves"] for b in eq]]),
    )
    spec = torch.fft.rfft(x) * torch.pow(10.0, gain_db / 20.0)[:, None, :]
    x = torch.fft.irfft(spec, n=n)
    if timbre["rt60_s"] > 0:
        gen = torch.Generator().manual_seed(timbre["rir_seed"])
        length = int(timbre["rt60_s"] * sample_rate)
        rir = synthetic_rir(
            torch.tensor([timbre["rt60_s"]]), sample_rate, length, drr_db=timbre["drr_db"], generator=gen
        )
        n_fft = n + length
        x = fft_convolve(x, torch.fft.rfft(rir, n=n_fft), n_fft)
    return x[0, 0].numpy().astype(np.float32)
