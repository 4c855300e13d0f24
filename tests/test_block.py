"""fastai_audio.data.block: AudioBlock in fastai's DataBlock API, and the picklable labellers."""

import pickle

import pytest
from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import GrandparentSplitter, parent_label

from fastai_audio import ParameterError
from fastai_audio.data import AudioBlock, RegexLabeller, get_audio_files


def test_audio_block_in_a_datablock(toy_folder):
    dblock = DataBlock(
        blocks=(AudioBlock(sample_rate=8000, duration=0.25), CategoryBlock),
        get_items=get_audio_files,
        get_y=parent_label,
        splitter=GrandparentSplitter(),
    )
    dls = dblock.dataloaders(toy_folder, bs=5, num_workers=0)
    x, _ = dls.one_batch()
    assert x.shape == (5, 1, 2000) and x.sample_rate == 8000


def test_regex_labeller_needs_a_group():
    with pytest.raises(ParameterError, match="needs a group"):
        RegexLabeller(r"\w+\.wav")
    assert pickle.loads(pickle.dumps(RegexLabeller(r"(\w+)_\d"))).__call__("a/b/dog_1.wav") == "dog"
