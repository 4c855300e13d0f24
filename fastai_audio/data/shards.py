"""WebDataset tar shards: write any data set the loaders read into shards, and stream them back as fastai loaders.

A shard is a plain tar file of samples ``KEY.flac`` (or the file's original bytes, ``KEY.wav``, ``KEY.mp3``...) and
``KEY.json`` (label and metadata), readable by the ``webdataset`` package and every tool that reads WebDataset
shards. ``index.json`` beside them records what a loader needs before it reads any audio: the classes, the shards
of each split with their sample counts, rates and durations.

Streaming reads shards with ``webdataset`` (local paths, brace patterns such as ``train-{000000..000127}.tar``,
``http(s)://`` URLs, and ``pipe:`` commands for object storage, e.g. ``pipe:aws s3 cp s3://bucket/train-000001.tar
-``) and decodes audio with soundfile, then runs the same item transforms as the file loaders (downmix, resample,
crop) and the same batch transforms.

- Training streams are resampled: each loader worker of each rank draws shards at random (seeded by ``seed``, the
  epoch, the rank and the worker) through a shuffle buffer, and an epoch is a fixed number of batches, the same on
  every rank, so DDP never waits for a rank that ran out of data.
- Validation is an exact pass: shards (or, with fewer shards than rank x worker slots, samples) are dealt to the
  slots, every sample is read once, and ``len(dl)`` is known from the index.
- A sample that cannot be decoded, or a shard that breaks off, is skipped with a warning naming the shard and the
  key; an epoch never stops for it.
"""

from __future__ import annotations

import io
import json
import math
import random
import re
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
from fastai.torch_core import num_distrib, rank_distrib, to_device
from torch.utils.data import get_worker_info

from .._validate import check_choice, check_positive
from ..core import TensorAudio
from ..decode import decode_audio
from ..errors import AudioFileError, ParameterError
from ..files import audio_info
from ..io import pcm_to_float
from .items import is_multi_label, label_of, source_path
from .loader import AudioDL, ExactPass

__all__ = ["INDEX_NAME", "ShardDL", "expand_urls", "read_shard_index", "write_shards"]

#: The index file ``write_shards`` writes beside the shards.
INDEX_NAME = "index.json"
_MAX_BAD_RUN = 1000

_EXACT_SUBTYPES = {"PCM_16": "PCM_16", "PCM_24": "PCM_24", "PCM_S8": "PCM_S8", "PCM_U8": "PCM_S8"}
_UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "M": 1000**2, "MB": 1000**2, "G": 1000**3, "GB": 1000**3,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}  # fmt: skip


def parse_size(size) -> int:
    """Bytes in ``size``: an int, or a string such as ``'500MB'``, ``'2GB'``, ``'64MiB'``."""
    if isinstance(size, (int, np.integer)) and size > 0:
        return int(size)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(size))
    if not m or m.group(2).upper() not in _UNITS or float(m.group(1)) <= 0:
        raise ParameterError(f"shard_size {size!r} is not a size; use bytes or a string such as '500MB' or '2GB'")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


# ---------------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------------


def _encode(path: Path, fmt: str) -> tuple[str, bytes, dict]:
    """(extension, bytes, metadata) of one file: FLAC when that is exact (integer PCM), else its original bytes."""
    info = audio_info(path)
    meta = {"sample_rate": info.sample_rate, "frames": info.frames, "channels": info.channels,
            "duration": info.duration, "source": str(path)}  # fmt: skip
    subtype = _EXACT_SUBTYPES.get(info.subtype)
    if fmt == "flac" and subtype is not None and path.suffix.lower() != ".flac" and info.channels <= 8:
        data, rate = decode_audio(path, integer=True)
        buf = io.BytesIO()
        sf.write(buf, data.T, rate, format="FLAC", subtype=subtype)
        return "flac", buf.getvalue(), meta
    return path.suffix.lower().lstrip(".") or "bin", path.read_bytes(), meta


def write_shards(dls, dest, *, shard_size="500MB", format: str = "flac", seed: int = 0,
                 progress: bool = True) -> Path:  # fmt: skip
    """Write the training and validation files of ``dls`` as WebDataset tar shards, and an ``index.json``.

    Each sample is ``KEY.flac`` (integer PCM re-encoded losslessly: decoding gives back the same samples) or the
    file's original bytes (``format='original'``, or files FLAC cannot hold exactly: float WAV, MP3, OGG...), and
    ``KEY.json``: ``{"label", "source", "sample_rate", "frames", "channels", "duration"}``. Training samples are
    shuffled (``seed``) before they are cut into shards, so that any shard holds every class; validation samples
    keep their order. A shard closes before the sample that would take its members (headers included) past
    ``shard_size``, so all but the last of a split are the same size within one sample; the tar container adds its
    end blocks and padding to whole 10 KiB records (at most 20 KiB). The source files are only read.

    Args:
        dls: ``AudioDataLoaders`` from any file-based constructor (``from_folder``, ``from_df``, ``from_nsynth``...);
            their split and labels are what gets written.
        dest: folder to create (or an empty one): ``train-000000.tar``..., ``valid-000000.tar``..., ``index.json``.
        shard_size: bytes per shard: an int or ``'500MB'``, ``'2GB'``...
        format: ``'flac'`` or ``'original'``.
        seed: seed of the training samples' order.
        progress: show a progress bar.

    Returns:
        The path of ``index.json``.

    Raises:
        ParameterError: ``dest`` holds files; a bad ``shard_size`` or ``format``; loaders not backed by files.

    Examples:
        >>> dls = AudioDataLoaders.from_folder("data", bs=4)
        >>> index = write_shards(dls, "my_shards", shard_size="40KB", progress=False)
        >>> info = read_shard_index(index)
        >>> info["classes"], info["splits"]["train"]["n"], [s["name"] for s in info["splits"]["train"]["shards"]]
        (['high', 'low'], 8, ['train-000000.tar', 'train-000001.tar'])
    """
    import webdataset as wds
    from fastprogress.fastprogress import progress_bar

    limit = parse_size(shard_size)
    check_choice("format", format, ("flac", "original"))
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise ParameterError(f"{dest} is not empty: write shards into a new or empty folder (nothing was changed)")
    dest.mkdir(parents=True, exist_ok=True)
    index = {"version": 1, "classes": [str(c) for c in dls.vocab], "multi_label": is_multi_label(dls), "format": format,
             "splits": {}}  # fmt: skip
    for split, ds in (("train", dls.train_ds), ("valid", dls.valid_ds)):
        order = list(range(len(ds)))
        if split == "train":
            random.Random(seed).shuffle(order)
        shards, sink, size = [], None, 0
        rates, durations = set(), 0.0
        for n, i in enumerate(progress_bar(order, leave=False) if progress else order):
            path = source_path(ds, i)
            ext, data, meta = _encode(path, format)
            meta["label"] = label_of(ds, i)
            record = json.dumps(meta).encode()
            need = _tar_bytes(len(data)) + _tar_bytes(len(record))
            if sink is None or (size and size + need > limit):
                if sink is not None:
                    sink.close()
                shards.append({"name": f"{split}-{len(shards):06d}.tar", "n": 0, "bytes": 0})
                # a whole-second mtime: a fractional one makes tarfile add a PAX header before every member, two
                # more blocks to write and to parse when streaming
                sink, size = wds.TarWriter(str(dest / shards[-1]["name"]), mtime=int(time.time())), 0
            sink.write({"__key__": f"{n:08d}_{_safe(path.stem)}", ext: data, "json": record})
            size += need
            shards[-1]["n"] += 1
            rates.add(meta["sample_rate"])
            durations += meta["duration"]
        if sink is not None:
            sink.close()
        for s in shards:
            s["bytes"] = (dest / s["name"]).stat().st_size
        index["splits"][split] = {"n": sum(s["n"] for s in shards), "shards": shards, "sample_rates": sorted(rates),
                                  "duration": round(durations, 3)}  # fmt: skip
    (dest / INDEX_NAME).write_text(json.dumps(index, indent=1))
    return dest / INDEX_NAME


def _tar_bytes(n: int) -> int:
    return 512 + -(-n // 512) * 512  # a member's header block and its data padded to whole blocks


def _safe(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem)[:80]  # no dots: WebDataset cuts keys at the first one


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------


def read_shard_index(url) -> dict:
    """The ``index.json`` that ``write_shards`` wrote (a path, or any URL ``webdataset`` opens).

    Examples:
        >>> read_shard_index("shards/index.json")["classes"]
        ['high', 'low']
    """
    import webdataset as wds

    try:
        with wds.gopen(str(url)) as f:
            index = json.loads(f.read())
    except (OSError, ValueError) as err:
        raise AudioFileError(url, f"cannot be read as a shard index ({err}); pass the index.json that write_shards "
                             "or `fastai-audio shard` wrote") from None  # fmt: skip
    if not isinstance(index, dict) or "classes" not in index or "splits" not in index:
        raise AudioFileError(url, "is not a shard index (no 'classes' and 'splits'); pass write_shards' index.json")
    return index


def expand_urls(urls) -> list[str]:
    """Shard URLs: a string (brace patterns expanded, ``::`` separating several) or a list of them.

    Examples:
        >>> expand_urls("train-{000000..000002}.tar")
        ['train-000000.tar', 'train-000001.tar', 'train-000002.tar']
    """
    import webdataset as wds

    if isinstance(urls, (str, Path)):
        urls = [str(urls)]
    return [u for url in urls for u in wds.shardlists.expand_urls(str(url))]


def _shard_samples(url: str):
    """The samples of one shard; a shard that cannot be opened or breaks off warns, naming it, and ends early."""
    import webdataset as wds

    def skip_rest(err: Exception) -> bool:
        reason = str(err.args[0]).split(" @ ")[0] if err.args else ""
        warnings.warn(f"skipped the rest of shard {url}: {type(err).__name__}: {reason}", stacklevel=2)
        return False  # (stop reading this shard: what follows a broken member cannot be trusted)

    return wds.tarfile_samples([{"url": url}], handler=skip_rest)


class ShardStream:
    """The samples of one split's shards for a :class:`ShardDL`; stands in for a fastai ``Datasets``.

    Attributes a fastai ``Datasets`` has (``tls``, ``vocab``, ``decode``, ``new_empty``...) come from ``template``,
    an empty ``Datasets`` with the loaders' type transforms, so ``test_dl``, ``show_batch``, ``export`` and
    ``predict`` work as with file-based loaders.
    """

    def __init__(self, urls: list, counts: list | None, template, *, train: bool, seed: int = 0,
                 shuffle_buffer: int = 1000):  # fmt: skip
        self.urls, self.counts, self.template = list(urls), counts, template
        self.train, self.seed, self.shuffle_buffer = train, seed, shuffle_buffer

    def __getattr__(self, name):
        template = self.__dict__.get("template")
        if template is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(template, name)

    def __len__(self) -> int:
        return int(sum(self.counts)) if self.counts else 0

    def new_empty(self):
        return self.template.new_empty()

    # -- which samples a (rank, worker) reads ---------------------------------------------------------------------

    def exact_plan(self, slot: int, slots: int) -> tuple[list[str], int | None, int]:
        """For the exact pass: (shards to read, keep every ``slots``-th sample from ``slot`` or ``None`` for all,
        samples this slot yields)."""
        if len(self.urls) >= slots:
            mine = list(range(slot, len(self.urls), slots))
            return [self.urls[j] for j in mine], None, sum(self.counts[j] for j in mine) if self.counts else 0
        total = sum(self.counts) if self.counts else 0
        return list(self.urls), slot, len(range(slot, total, slots))

    def samples(self, *, epoch: int, rank: int, world: int, worker: int, workers: int):
        """Raw samples (dicts with ``__key__``, ``__url__`` and one entry per file extension) of one worker of one
        rank: an endless resampled stream when training, the slot's share of an exact pass otherwise."""
        if not self.train:
            urls, keep, _ = self.exact_plan(rank * workers + worker, world * workers)
            k = 0
            for url in urls:
                for sample in _shard_samples(url):
                    if keep is None or k % (world * workers) == keep:
                        yield sample
                    k += 1
            return
        rng = random.Random(f"{self.seed}:{epoch}:{rank}:{worker}")
        buffer = []
        while True:
            url = rng.choice(self.urls)
            for sample in _shard_samples(url):
                if len(buffer) < self.shuffle_buffer:
                    buffer.append(sample)
                    continue
                j = rng.randrange(len(buffer))
                buffer[j], sample = sample, buffer[j]
                yield sample

    def decode_sample(self, sample):
        """One raw sample -> ``(TensorAudio, label)`` before the type transforms; ``None`` (with a warning naming
        the shard, the key and the decode core's reason) when it cannot be decoded."""
        key, url = sample.get("__key__"), sample.get("__url__")
        try:
            meta = json.loads(sample["json"])
            audio = next((v for k, v in sample.items() if not k.startswith("__") and k != "json"), None)
            if audio is None:
                raise ValueError(f"no audio member, only {sorted(k for k in sample if not k.startswith('__'))}")
            samples, rate = decode_audio(audio, integer=True, name=f"sample {key} of shard {url}")
            return TensorAudio(pcm_to_float(samples), sample_rate=rate), meta["label"]
        except Exception as err:  # noqa: BLE001 - any broken sample is skipped, never the epoch
            reason = err.reason if isinstance(err, AudioFileError) else str(err)
            warnings.warn(f"skipped sample {key} of shard {url}: {type(err).__name__}: {reason}", stacklevel=2)
            return None


class ShardDL(ExactPass, AudioDL):
    """An ``AudioDL`` that streams WebDataset shards (see the module's notes); built by
    ``AudioDataLoaders.from_shards``.

    Each worker of each rank reads its own samples (``ShardStream.samples``) and runs the type transforms
    (decode, downmix, resample, crop), the item transforms and the batch transforms as the file loaders do. With
    ``exact=False`` (training) every rank yields ``epoch_size // (world size * bs)`` batches an epoch; with
    ``exact=True`` (validation) every sample once. ``dl.new(a_Datasets)`` (``test_dl``, ``export``) gives a file
    ``AudioDL`` with the same transforms.

    Examples:
        >>> dls = AudioDataLoaders.from_shards("shards/train-{000000..000001}.tar", "shards/valid-000000.tar",
        ...                                    index="shards/index.json", duration=1.0, bs=4)
        >>> type(dls.train).__name__, len(dls.train), len(dls.valid)   # 8 training samples an epoch, 4 valid
        ('ShardDL', 2, 1)
    """

    splits_ranks = True  # AudioDistributedTrainer leaves it unwrapped: it shards by rank itself

    def __init__(self, dataset=None, exact: bool = False, epoch_size: int | None = None, **kwargs):
        self.exact, self.epoch_size, self.epoch = exact, epoch_size, -1
        kwargs.update(indexed=False, shuffle=False)
        if not exact:
            kwargs["drop_last"] = True
        super().__init__(dataset, **kwargs)
        if kwargs.get("persistent_workers"):
            raise ParameterError("streamed shards need fresh workers each epoch (they learn the epoch's seed when "
                                 "they start): use persistent_workers=False")  # fmt: skip
        self.n = self._planned_items()

    @property
    def rank(self) -> int:
        return rank_distrib() if num_distrib() > 1 else 0

    @property
    def world_size(self) -> int:
        return max(num_distrib(), 1)

    def _workers(self) -> int:
        return 1 if self._main_only else max(self.workers, 1)

    def __iter__(self):
        if not self._main_only:  # PyTorch's worker processes, started by fastai, each read their share
            yield from super().__iter__()
            return
        self.randomize()  # set-up and one_batch: read here, without starting a process
        self.before_iter()
        for b in self.create_batches(None):
            yield self.after_batch(b if self.device is None else to_device(b, self.device))
        self.after_iter()

    def _planned_items(self) -> int:
        if not isinstance(self.dataset, ShardStream):
            return 0
        if self.exact:
            return sum(self.dataset.exact_plan(self.rank * self._workers() + w, self.world_size * self._workers())[2]
                       for w in range(self._workers()))  # fmt: skip
        return (self.epoch_size or len(self.dataset)) // self.world_size

    def __len__(self) -> int:
        bs = self.bs or 1
        if self.exact:
            workers, slots = self._workers(), self.world_size * self._workers()
            return sum(math.ceil(self.dataset.exact_plan(self.rank * workers + w, slots)[2] / bs)
                       for w in range(workers))  # fmt: skip
        return self._planned_items() // bs

    def before_iter(self):
        self.epoch += 1  # workers start afresh each epoch and take it with them
        super().before_iter()

    def get_idxs(self) -> list:
        return [None] * self._planned_items()

    def _items(self, worker: int, workers: int):
        stream = self.dataset
        template = stream.template
        x_tfms, y_tfms = template.tls[0].tfms, template.tls[-1].tfms
        bad = 0
        for sample in stream.samples(epoch=max(self.epoch, 0), rank=self.rank, world=self.world_size,
                                     worker=worker, workers=workers):  # fmt: skip
            decoded = stream.decode_sample(sample)
            if decoded is None:
                bad += 1
                if bad >= _MAX_BAD_RUN:  # an endless training stream of broken samples would never end
                    raise ParameterError(f"{bad} samples in a row could not be decoded (the last from "
                                         f"{sample.get('__url__')}): check the shards and the warnings")  # fmt: skip
                continue
            x, label = decoded
            try:
                item = self.after_item((x_tfms(x), y_tfms(label)))
                bad = 0
                yield item
            except Exception as err:  # noqa: BLE001
                bad += 1
                warnings.warn(f"skipped sample {sample.get('__key__')} of shard {sample.get('__url__')}: "
                              f"{type(err).__name__}: {err}", stacklevel=2)  # fmt: skip

    def create_batches(self, samps):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        items = self._items(worker, workers)
        if not self.exact:  # this worker's share of the epoch's fixed number of batches
            total, bs = len(self), self.bs or 1
            mine = total // workers + (worker < total % workers)
            items = (item for _, item in zip(range(mine * bs), items))
        yield from map(self.do_batch, self.chunkify(items))

    def create_item(self, s):
        if "_probe" not in self.__dict__:
            self._probe = self._items(0, 1)
        try:
            return next(self._probe)
        except StopIteration:
            raise ParameterError("the shards hold no decodable sample: check the URLs and the warnings") from None

    def do_item(self, s):
        return self.create_item(s)  # items leave _items with their item transforms applied

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_probe", None)
        return state

    def new(self, dataset=None, cls=None, **kwargs):
        if dataset is not None and not isinstance(dataset, ShardStream):  # test_dl, export: files again
            return AudioDL.new(self, dataset, cls=cls or AudioDL, **{"indexed": True, **kwargs})
        kwargs = {"exact": self.exact, "epoch_size": self.epoch_size, **kwargs}
        return AudioDL.new(self, dataset, cls=cls, **kwargs)


def shard_template(classes: list, *, multi_label: bool, sample_rate, duration, mono, pad_mode):
    """The loader arguments of ``AudioBlock`` (``variable_length``...) and an empty ``Datasets`` with the type
    transforms of file loaders of these classes (``OpenAudio``, the label's ``Categorize``), for a ``ShardStream``
    to run and for ``test_dl``/``export`` to copy."""
    from fastai.data.core import Datasets
    from fastai.data.transforms import MultiCategorize, OneHotEncode

    from .block import AudioBlock
    from .loaders import _Categorize

    block = AudioBlock(sample_rate=sample_rate, duration=duration, mono=mono, pad_mode=pad_mode)
    y_tfms = ([MultiCategorize(vocab=classes), OneHotEncode(len(classes))] if multi_label
              else [_Categorize(vocab=classes)])  # fmt: skip
    y_tfms[0].c = len(classes)  # what Categorize's setup sets, which an empty Datasets skips
    template = Datasets([], tfms=[list(block.type_tfms), y_tfms], splits=([], []), dl_type=AudioDL, n_inp=1,
                        do_setup=False)  # fmt: skip
    return block.dls_kwargs, template


def check_shard_args(epoch_size, shuffle_buffer):
    if epoch_size is not None:
        check_positive("epoch_size", epoch_size, integer=True)
    check_positive("shuffle_buffer", shuffle_buffer, integer=True)
