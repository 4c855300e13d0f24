"""The data layer: blocks, loaders and checks that take audio files to fastai batches of ``TensorAudio``."""

from .. import _compat  # noqa: F401  (first: it imports fastai with fastai's import-time warning silenced)

# isort: split
from .audio_dl import AudioDL
from .block import AudioBlock, RegexLabeller, get_audio_files
from .check import check_audio_files, drop_bad_files
from .itemlist import AudioItemList
from .loaders import AudioDataLoaders
from .pack import pack
from .shards import ShardDL, read_shard_index, write_shards

__all__ = [
    "AudioBlock",
    "AudioDL",
    "AudioDataLoaders",
    "AudioItemList",
    "RegexLabeller",
    "ShardDL",
    "check_audio_files",
    "drop_bad_files",
    "get_audio_files",
    "pack",
    "read_shard_index",
    "write_shards",
]
