"""fastai_audio.transforms.augment.pitch: PitchShift and TimeStretch."""

from __future__ import annotations

import pytest
import torch
from conftest import SR, peak_frequency, sine, tones

from fastai_audio import TensorAudio
from fastai_audio.transforms import (
    PitchShift,
    TimeStretch,
)


@pytest.mark.parametrize("semitones", [2.0, -1.5])
def test_pitch_shift_moves_a_sine_by_the_requested_semitones(semitones):
    x = tones([440.0, 440.0])
    tfm = PitchShift(-2, 2, step=0.5)
    y = tfm.apply(x.as_subclass(torch.Tensor), value=torch.tensor([semitones, 0.0]))
    assert y.shape == x.shape
    assert peak_frequency(y[0, 0, 2000:-2000], SR) == pytest.approx(440 * 2 ** (semitones / 12), rel=0.01)
    assert torch.equal(y[1], x[1].as_subclass(torch.Tensor))  # 0 semitones: untouched


def test_time_stretch_changes_duration_not_pitch():
    burst = torch.zeros(1, 1, SR)
    burst[..., : SR // 2] = torch.from_numpy(sine(440, SR, 0.5))
    x = TensorAudio(burst, sample_rate=SR)
    y = TimeStretch(step=0.05).apply(x.as_subclass(torch.Tensor), value=torch.tensor([2.0]))
    env = y[0, 0].abs()
    loud = (env > 0.1).nonzero().flatten()
    assert y.shape == x.shape and int(loud.max()) == pytest.approx(SR // 4, abs=SR // 50)  # half as long
    assert peak_frequency(y[0, 0, : SR // 4], SR) == pytest.approx(440, rel=0.02)
