"""Writing the packed cache (``fastai_audio.packed``): every clip of a data set decoded once, at the loaders' rate
and channel count, into one file of samples per split."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..decode import INT16_SUBTYPES, decode_audio
from ..errors import AudioFileError, ParameterError
from ..packed import INDEX_NAME, VERSION
from ..transforms.item import OpenAudio, audio_config_of
from .items import is_multi_label, label_of, source_path

__all__ = ["pack"]


def pack(dls, dest, *, progress: bool = True) -> Path:
    """Decode every training and validation file of ``dls`` once into a packed cache in ``dest``.

    The clips are stored whole, at the loaders' sample rate and channel count (``dls.audio_config``: resampled and
    downmixed as the loaders would), as ``int16`` when every file is 8/16-bit PCM at that rate and channel count
    (the files' own samples, exactly) and as ``float32`` otherwise. ``AudioDataLoaders.from_packed(dest)`` then
    reads it with the same labels and split; crops (``duration``) are taken when batches are made, so random
    crops still change every epoch. Files are written under temporary names and renamed into place when complete,
    the index last: an interrupted pack leaves no cache that looks whole.

    Args:
        dls: ``AudioDataLoaders`` from a file-based constructor with a fixed ``sample_rate``.
        dest: a new or empty folder.
        progress: show a progress bar.

    Returns:
        The path of the index, ``dest/packed.json``.

    Raises:
        ParameterError: ``dest`` holds files; loaders without a fixed rate, or not backed by files.
        AudioFileError: a file that cannot be decoded (named), or a write that failed (the destination and the cause).

    Examples:
        >>> index = pack(AudioDataLoaders.from_folder("data", bs=4), "packed_data", progress=False)
        >>> index.name, sorted(p.name for p in index.parent.iterdir())
        ('packed.json', ['packed.json', 'train.bin', 'valid.bin'])
    """
    from fastprogress.fastprogress import progress_bar

    config = audio_config_of(dls.valid_ds)
    if config is None or config.sample_rate is None:
        raise ParameterError("pack needs loaders that open audio files at one rate: build them with sample_rate=<Hz>")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise ParameterError(f"{dest} is not empty: pack into a new or empty folder (nothing was changed)")
    whole = OpenAudio(config=replace(config, duration=None, pad_mode="zeros"))  # resample and downmix, no crop
    splits = {"train": dls.train_ds, "valid": dls.valid_ds}
    sources = {split: [source_path(ds, i) for i in range(len(ds))] for split, ds in splits.items()}
    exact = all(_reads_exactly(p, config) for paths in sources.values() for p in paths)
    dtype = "int16" if exact else "float32"
    dest.mkdir(parents=True, exist_ok=True)
    index = {
        "version": VERSION,
        "format": "fastai_audio packed cache",
        "dtype": dtype,
        "channels": None,
        "audio_config": json.loads(config.to_json()),
        "classes": [str(c) for c in dls.vocab],
        "multi_label": is_multi_label(dls),
        "splits": {},
    }
    written = []
    try:
        for split, ds in splits.items():
            file = dest / f"{split}.bin"
            tmp = file.with_name(file.name + ".tmp")
            written.append(tmp)
            clips, frames = [], 0
            with open(tmp, "wb") as out:
                order = range(len(ds))
                for i in progress_bar(order, leave=False) if progress else order:
                    path = sources[split][i]
                    if exact:
                        samples = decode_audio(path, integer=True)[0]
                    else:
                        samples = whole.clip(path)[0].numpy()
                    samples = np.ascontiguousarray(samples.T, dtype=dtype)  # (frames, channels)
                    if index["channels"] is None:
                        index["channels"] = samples.shape[1]
                    elif samples.shape[1] != index["channels"]:
                        raise ParameterError(
                            f"{path} has {samples.shape[1]} channels, the clips before it "
                            f"{index['channels']}: pack loaders built with mono=True"
                        )
                    out.write(samples.tobytes())
                    clips.append([frames, len(samples), label_of(ds, i), str(path)])
                    frames += len(samples)
                out.flush()
                os.fsync(out.fileno())
            index["splits"][split] = {"file": file.name, "frames": frames, "clips": clips}
        for tmp in written:
            os.replace(tmp, tmp.with_name(tmp.name[: -len(".tmp")]))
        tmp_index = dest / (INDEX_NAME + ".tmp")
        tmp_index.write_text(json.dumps(index))
        os.replace(tmp_index, dest / INDEX_NAME)
    except OSError as err:
        for tmp in written:
            tmp.unlink(missing_ok=True)
        raise AudioFileError(
            dest,
            f"the packed cache could not be written ({err.strerror or err}); free some space "
            "or choose another destination (nothing was left there)",
        ) from None
    except BaseException:
        for tmp in written:
            tmp.unlink(missing_ok=True)
        raise
    return dest / INDEX_NAME


def _reads_exactly(path: Path, config) -> bool:
    """Whether ``path``'s samples are int16 at the config's rate and channel count (stored as they are)."""
    from ..files import audio_info

    try:
        info = audio_info(path)
    except AudioFileError:
        return False  # the write names the error
    channels_ok = info.channels == 1 or not config.mono
    return info.subtype in INT16_SUBTYPES and info.sample_rate == config.sample_rate and channels_ok
