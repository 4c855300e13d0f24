"""WebDataset tar shards: write any data set the loaders read into shards, and stream them back as fastai loaders.

A shard is a plain tar file of samples ``KEY.flac`` (or the file's original bytes, ``KEY.wav``, ``KEY.mp3``...) and
``KEY.json`` (label and metadata), readable by the ``webdataset`` package and every tool that reads WebDataset
shards. ``index.json`` beside them records what a loader needs before it reads any audio: the classes, the shards
of each split with their sample counts, rates and durations.

Streaming opens shards as ``webdataset`` does (local paths, brace patterns such as ``train-{000000..000127}.tar``,
``http(s)://`` URLs, and ``pipe:`` commands for object storage, e.g. ``pipe:aws s3 cp s3://bucket/train-000001.tar
-``), reads their members with ``tarstream`` (webdataset's samples, without ``tarfile``'s per-member cost) and fills
whole batches as the file loaders do (``ShardFiller``): a clip already at the loaders' rate and channel count is read
from its member's bytes straight into its row (int16 for a GPU), others go through the same steps as files (downmix,
resample, crop), and the same batch transforms follow. Loaders with item transforms make their batches item by item
in PyTorch's worker processes instead.

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
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
from fastai.data.load import fa_collate
from fastai.torch_core import num_distrib, rank_distrib, to_device
from torch.utils.data import get_worker_info

from .._compat import dataset_pipelines
from .._validate import check_choice, check_positive
from ..atomic import atomic_file, commit, temporary_name
from ..core import TensorAudio
from ..decode import decode_audio
from ..errors import AudioFileError, ParameterError
from ..files import audio_info
from ..io import pcm_to_float
from ..transforms.item import OpenAudio
from .audio_dl import AudioDL, ExactPass
from .fill import BatchFiller, ClipPlan, FilledBatch, RowError, compose, has_steps
from .items import FastCategorize, is_multi_label, label_of, source_path
from .tarstream import BrokenShardError, tar_samples
from .workers import fork_available

__all__ = ["INDEX_NAME", "ShardDL", "expand_urls", "read_shard_index", "write_shards"]

#: The index file ``write_shards`` writes beside the shards.
INDEX_NAME = "index.json"
_MAX_BAD_RUN = 1000

_EXACT_SUBTYPES = {"PCM_16": "PCM_16", "PCM_24": "PCM_24", "PCM_S8": "PCM_S8", "PCM_U8": "PCM_S8"}
_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "M": 1000**2,
    "MB": 1000**2,
    "G": 1000**3,
    "GB": 1000**3,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
}


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
    meta = {
        "sample_rate": info.sample_rate,
        "frames": info.frames,
        "channels": info.channels,
        "duration": info.duration,
        "source": str(path),
    }
    subtype = _EXACT_SUBTYPES.get(info.subtype)
    if fmt == "flac" and subtype is not None and path.suffix.lower() != ".flac" and info.channels <= 8:
        data, rate = decode_audio(path, integer=True)
        buf = io.BytesIO()
        sf.write(buf, data.T, rate, format="FLAC", subtype=subtype)
        return "flac", buf.getvalue(), meta
    return path.suffix.lower().lstrip(".") or "bin", path.read_bytes(), meta


def write_shards(dls, dest, *, shard_size="500MB", format: str = "flac", seed: int = 0, progress: bool = True) -> Path:
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
        AudioFileError: a shard or the index could not be written (a full disk, a read-only folder), naming
            ``dest`` and the cause. Each shard is written under a temporary name and renamed when complete, and a
            failure removes every shard of the call, so ``dest`` never holds shards without an index.

    Examples:
        >>> dls = AudioDataLoaders.from_folder("data", bs=4)
        >>> index = write_shards(dls, "my_shards", shard_size="40KB", progress=False)
        >>> info = read_shard_index(index)
        >>> info["classes"], info["splits"]["train"]["n"], [s["name"] for s in info["splits"]["train"]["shards"]]
        (['high', 'low'], 8, ['train-000000.tar', 'train-000001.tar'])
    """
    import webdataset as wds

    limit = parse_size(shard_size)
    check_choice("format", format, ("flac", "original"))
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise ParameterError(f"{dest} is not empty: write shards into a new or empty folder (nothing was changed)")
    dest.mkdir(parents=True, exist_ok=True)
    index = {
        "version": 1,
        "classes": [str(c) for c in dls.vocab],
        "multi_label": is_multi_label(dls),
        "format": format,
        "splits": {},
    }
    written = []  # every shard of this call, finished or not, so that a failure leaves nothing behind
    try:
        for split, ds in (("train", dls.train_ds), ("valid", dls.valid_ds)):
            index["splits"][split] = _write_split(wds, ds, split, dest, limit, format, seed, progress, written)
        with atomic_file(dest / INDEX_NAME, "shard index") as tmp:
            tmp.write_text(json.dumps(index, indent=1))
    except BaseException as err:  # (Ctrl-C too: no half-written shard is left behind)
        for path in written:
            path.unlink(missing_ok=True)
        if isinstance(err, OSError):
            cause = err.reason if isinstance(err, AudioFileError) else err.strerror or err
            raise AudioFileError(
                dest,
                f"the shards could not be written ({cause}); nothing was left there: free "
                "some space or write elsewhere",
            ) from None
        raise
    return dest / INDEX_NAME


def _write_split(
    wds, ds, split: str, dest: Path, limit: int, format: str, seed: int, progress: bool, written: list
) -> dict:
    """One split's shards (each under a temporary name until it is complete) and its entry of the index."""
    from fastprogress.fastprogress import progress_bar

    order = list(range(len(ds)))
    if split == "train":
        random.Random(seed).shuffle(order)
    shards, sink, size = [], None, 0
    rates, durations = set(), 0.0

    def close():
        sink.close()
        final = dest / shards[-1]["name"]
        commit(temporary_name(final), final)
        written.append(final)

    for n, i in enumerate(progress_bar(order, leave=False) if progress else order):
        path = source_path(ds, i)
        ext, data, meta = _encode(path, format)
        meta["label"] = label_of(ds, i)
        record = json.dumps(meta).encode()
        need = _tar_bytes(len(data)) + _tar_bytes(len(record))
        if sink is None or (size and size + need > limit):
            if sink is not None:
                close()
            shards.append({"name": f"{split}-{len(shards):06d}.tar", "n": 0, "bytes": 0})
            tmp = temporary_name(dest / shards[-1]["name"])
            written.append(tmp)
            # a whole-second mtime: a fractional one makes tarfile add a PAX header before every member, two
            # more blocks to write and to parse when streaming
            sink, size = wds.TarWriter(str(tmp), mtime=int(time.time())), 0
        sink.write({"__key__": f"{n:08d}_{_safe(path.stem)}", ext: data, "json": record})
        size += need
        shards[-1]["n"] += 1
        rates.add(meta["sample_rate"])
        durations += meta["duration"]
    if sink is not None:
        close()
    for s in shards:
        s["bytes"] = (dest / s["name"]).stat().st_size
    return {
        "n": sum(s["n"] for s in shards),
        "shards": shards,
        "sample_rates": sorted(rates),
        "duration": round(durations, 3),
    }


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
        raise AudioFileError(
            url,
            f"cannot be read as a shard index ({err}); pass the index.json that write_shards "
            "or `fastai-audio shard` wrote",
        ) from None
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


def _open_shard(url: str):
    """A binary stream of the shard ``url``: a local file read in large blocks, or what ``webdataset.gopen`` opens
    (``http(s)://``, ``pipe:``...)."""
    if "://" not in url and not url.startswith("pipe:"):
        return open(url, "rb", buffering=1 << 20)
    import webdataset as wds

    return wds.gopen(url)


def _warn_skipped(what: str, reason: str):
    warnings.warn(f"skipped {what}: {reason}", stacklevel=3)


def _shard_samples(url: str, report=_warn_skipped):
    """The samples of one shard (``tarstream.tar_samples``); a shard that cannot be opened or breaks off is
    reported (``report(what, reason)``, by default a warning naming it) and ends early."""
    try:
        stream = _open_shard(url)
    except Exception as err:  # noqa: BLE001 - a shard that cannot be opened is skipped, never the epoch
        report(f"the rest of shard {url}", f"{type(err).__name__}: {err}")
        return
    try:
        with stream:
            yield from tar_samples(stream, url)
    except BrokenShardError as err:
        report(f"the rest of shard {url}", f"{type(err).__name__}: {err.reason}")
    except OSError as err:  # (a pipe or a connection that failed while it was read)
        report(f"the rest of shard {url}", f"{type(err).__name__}: {err}")


class ShardStream:
    """The samples of one split's shards for a :class:`ShardDL`; stands in for a fastai ``Datasets``.

    Attributes a fastai ``Datasets`` has (``tls``, ``vocab``, ``decode``, ``new_empty``...) come from ``template``,
    an empty ``Datasets`` with the loaders' type transforms, so ``test_dl``, ``show_batch``, ``export`` and
    ``predict`` work as with file-based loaders.
    """

    def __init__(
        self, urls: list, counts: list | None, template, *, train: bool, seed: int = 0, shuffle_buffer: int = 1000
    ):
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

    def samples(self, *, epoch: int, rank: int, world: int, worker: int, workers: int, report=_warn_skipped):
        """Raw samples (dicts with ``__key__``, ``__url__`` and one entry per file extension) of one worker of one
        rank: an endless resampled stream when training, the slot's share of an exact pass otherwise. A shard that
        breaks off is reported with ``report(what, reason)`` (default: a warning)."""
        if not self.train:
            urls, keep, _ = self.exact_plan(rank * workers + worker, world * workers)
            k = 0
            for url in urls:
                for sample in _shard_samples(url, report):
                    if keep is None or k % (world * workers) == keep:
                        yield sample
                    k += 1
            return
        rng = random.Random(f"{self.seed}:{epoch}:{rank}:{worker}")
        buffer, empty = [], 0
        while True:
            url = rng.choice(self.urls)
            empty += 1
            for sample in _shard_samples(url, report):
                empty = 0
                if len(buffer) < self.shuffle_buffer:
                    buffer.append(sample)
                    continue
                j = rng.randrange(len(buffer))
                buffer[j], sample = sample, buffer[j]
                yield sample
            if empty >= _MAX_BAD_RUN:  # an endless stream of shards that hold nothing would never yield
                raise ParameterError(
                    f"{empty} shards in a row held no sample (the last {url}): check the URLs and the warnings"
                )

    def decode_sample(self, sample):
        """One raw sample -> ``(TensorAudio, label)`` before the type transforms; ``None`` (with a warning naming
        the shard, the key and the decode core's reason) when it cannot be decoded."""
        name = _sample_name(sample)
        try:
            label, audio = _label_and_audio(sample)
            samples, rate = decode_audio(audio, integer=True, name=name)
            return TensorAudio(pcm_to_float(samples), sample_rate=rate), label
        except Exception as err:  # noqa: BLE001 - any broken sample is skipped, never the epoch
            _warn_skipped(name, _reason(err))
            return None


def _sample_name(sample: dict) -> str:
    """A raw sample as warnings name it: its key and its shard."""
    return f"sample {sample.get('__key__')} of shard {sample.get('__url__')}"


def _label_and_audio(sample: dict) -> tuple:
    """A raw sample's label (from its JSON record) and the bytes of its audio member (the one that is not JSON)."""
    label = json.loads(sample["json"])["label"]
    audio = next((v for k, v in sample.items() if not k.startswith("__") and k != "json"), None)
    if audio is None:
        raise ValueError(f"no audio member, only {sorted(k for k in sample if not k.startswith('__'))}")
    return label, audio


def _reason(err: Exception) -> str:
    """Why a sample was skipped: the error's type and, for the decode core's errors, their reason alone (the sample
    is named beside it)."""
    return f"{type(err).__name__}: {err.reason if isinstance(err, AudioFileError) else err}"


@dataclass(frozen=True)
class ShardTask:
    """One batch a worker fills from its own share of the shards: ``count`` samples of its stream of ``epoch``."""

    epoch: int
    worker: int
    workers: int
    count: int

    def __str__(self) -> str:
        return f"a batch of {self.count} samples of worker {self.worker}'s share of the shards (epoch {self.epoch})"


class ShardFiller(BatchFiller):
    """Fills the batches of a ``ShardDL`` (batch-level decoding, as ``BatchFiller`` fills those of files): each
    worker reads its own stream of samples (``ShardStream.samples``) and writes each clip straight into its row of
    the batch, from the member's bytes, when it is at the loaders' rate and channel count; other clips go through
    ``OpenAudio``'s own steps. Crops draw from a generator seeded by the stream's seed, the epoch, the rank and the
    worker. Samples that cannot be decoded and shards that break off are reported in the batch's ``skipped`` (the
    loader warns, naming them) and replaced by the next samples."""

    routed = True  # each worker keeps its own stream between the batches it fills

    def __init__(
        self, stream: ShardStream, opener, y_tfms, *, variable_length: bool, pad_mode: str, rank: int, world: int
    ):
        self.stream, self.opener, self.config, self.y_tfms = stream, opener, opener.config, y_tfms
        self.variable_length, self.pad_mode, self.on_error = variable_length, pad_mode, "skip"
        self.rank, self.world = rank, world
        self.pool_key = (tuple(stream.urls), stream.train, stream.seed, stream.shuffle_buffer, rank, world)
        self._streams, self._labels, self._reports = {}, {}, []

    def _stream(self, task: ShardTask):
        key = (task.epoch, task.worker, task.workers)
        if key not in self._streams:
            self._streams = {k: v for k, v in self._streams.items() if k[0] == task.epoch}  # (the last epoch's: done)
            samples = self.stream.samples(
                epoch=task.epoch,
                rank=self.rank,
                world=self.world,
                worker=task.worker,
                workers=task.workers,
                report=self._report,
            )
            crops = random.Random(f"{self.stream.seed}:{task.epoch}:{self.rank}:{task.worker}:crop")
            self._streams[key] = (samples, crops)
        return self._streams[key]

    def _report(self, what: str, reason: str):
        self._reports.append((what, reason))

    def fill(
        self, task: ShardTask, draws=None, *, int16: bool = False, out: np.ndarray | None = None, n: int | None = None
    ) -> FilledBatch:
        """Fill the next batch of ``task.count`` samples (fewer, or none, where an exact pass's share ends)."""
        samples, crops = self._stream(task)
        self._reports = []
        plans, labels = [], []
        try:
            while True:
                while len(plans) < task.count:
                    clip = self._next_clip(samples, crops)
                    if clip is None:
                        break
                    plans.append(clip[0])
                    labels.append(clip[1])
                if not plans:
                    return FilledBatch(np.zeros((0, 1, 0), np.float32), None, None, (), self._reports)
                try:
                    audio, rate = self._assemble(plans, int16, out, skip=True)
                    break
                except RowError as bad:  # a sample that broke off while it was read: the next one takes its row
                    self._report(bad.error.path, f"{type(bad.error).__name__}: {bad.error.reason}")
                    plans.pop(bad.row).close()
                    labels.pop(bad.row)
        finally:
            for p in plans:
                p.close()
        lengths = np.array([p.length for p in plans]) if self.variable_length else None
        return FilledBatch(audio, rate, lengths, (fa_collate([self._label(y) for y in labels]),), self._reports)

    def _label(self, label):
        key = label if isinstance(label, str) else json.dumps(label)  # (multi-label: a list)
        if key not in self._labels:
            self._labels[key] = self.y_tfms(label)
        return self._labels[key]

    def _next_clip(self, samples, crops):
        """The next decodable sample of the stream, opened: ``(clip, label)``, or ``None`` at its end."""
        draw_crops = self.stream.train and self.config.duration is not None
        bad = 0
        for sample in samples:
            name = _sample_name(sample)
            draw = crops.random() if draw_crops else None
            try:
                label, audio = _label_and_audio(sample)
                return self._open_member(audio, name, draw), label
            except Exception as err:  # noqa: BLE001 - any broken sample is skipped, never the epoch
                self._report(name, _reason(err))
                bad += 1
                if bad >= _MAX_BAD_RUN:  # an endless training stream of broken samples would never end
                    raise ParameterError(
                        f"{bad} samples in a row could not be decoded (the last from {sample.get('__url__')}): "
                        "check the shards and the warnings"
                    ) from None
        return None

    def _open_member(self, data: bytes, name: str, draw):
        def decoded():
            samples, rate = decode_audio(data, integer=True, name=name)
            wav, rate = self.opener.clip(TensorAudio(pcm_to_float(samples), sample_rate=rate), draw)
            return ClipPlan(None, name, wav.shape[-2], wav.shape[-1], rate, wav=wav)

        if self.config.pad_mode == "error":
            return decoded()
        return self._open_stored(None, data, name, draw, decoded)


class ShardDL(ExactPass, AudioDL):
    """An ``AudioDL`` that streams WebDataset shards (see the module's notes); built by
    ``AudioDataLoaders.from_shards``.

    Each worker of each rank reads its own samples (``ShardStream.samples``) and fills whole batches from them
    (``ShardFiller``) in the loaders' worker pool, which starts once and serves every epoch; batches are dealt to
    the workers in turn, so an epoch's batches do not depend on timing. With item transforms, each worker runs the
    type transforms (decode, downmix, resample, crop) and the item transforms sample by sample instead. With
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

    def __init__(
        self, dataset=None, exact: bool = False, epoch_size: int | None = None, allow_partial: bool = False, **kwargs
    ):
        self.exact, self.epoch_size, self.epoch, self.allow_partial = exact, epoch_size, -1, allow_partial
        kwargs.update(indexed=False, shuffle=False)
        if not exact:
            kwargs["drop_last"] = True
        super().__init__(dataset, **kwargs)
        if kwargs.get("persistent_workers"):
            raise ParameterError(
                "streamed shards need fresh workers each epoch (they learn the epoch's seed when "
                "they start): use persistent_workers=False"
            )
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
        read = 0
        for b in self._batches():
            read += len(b[0])
            yield b
        if self.exact and read < self.n:  # an exact pass that could not read what the index promised
            message = (
                f"the validation pass read {read} of the {self.n} samples the index counts in its shards "
                f"{self.dataset.urls[:3]}{'...' if len(self.dataset.urls) > 3 else ''} (missing or broken "
                "shards: see the warnings before this)"
            )
            if not self.allow_partial:
                raise ParameterError(
                    message + "; metrics on part of it are not the ones asked for. Fix or drop the "
                    "shards, or pass allow_partial=True to from_shards to accept it"
                )
            warnings.warn(message + "; metrics are computed on those (allow_partial=True)", stacklevel=2)

    def _batches(self):
        filler = self._filler()
        workers = 0 if self._main_only else self.workers
        if filler is None or (workers and not fork_available()):
            yield from self._iter_items()
            return
        self.randomize()
        self.before_iter()
        yield from self._deliver(filler, self._tasks(max(workers, 1)), workers)
        self.after_iter()

    def _filler(self) -> ShardFiller | None:
        """Batch-level decoding (``ShardFiller``) where the inputs are the shards' audio opened by ``OpenAudio``
        with no item or before-batch transforms; ``None`` (items one by one, as fastai makes them) otherwise."""
        stream = self.dataset
        if not isinstance(stream, ShardStream) or not self.bs or has_steps(self.after_item):
            return None
        pipes = dataset_pipelines(stream.template)
        if pipes is None or len(pipes) != 2 or len(pipes[0][1]) != 1 or not isinstance(pipes[0][1][0], OpenAudio):
            return None
        if has_steps(self.before_batch):
            return None
        _, y_fs, split_idx = pipes[1]
        return ShardFiller(
            stream,
            pipes[0][1][0],
            partial(compose, fs=y_fs, split_idx=split_idx),
            variable_length=self.variable_length,
            pad_mode=self.pad_mode,
            rank=self.rank,
            world=self.world_size,
        )

    def _shares(self, workers: int) -> list[list[int]]:
        """The sizes of the batches each of ``workers`` yields this epoch: in an exact pass its share of the index's
        counts, in training an equal share of ``epoch_size // (world size * bs)`` batches of ``bs``."""
        bs = self.bs or 1
        if self.exact:
            slots = self.world_size * workers
            counts = [self.dataset.exact_plan(self.rank * workers + w, slots)[2] for w in range(workers)]
            return [[min(bs, c - j * bs) for j in range(math.ceil(c / bs))] for c in counts]
        total = self._planned_items() // bs
        return [[bs] * (total // workers + (w < total % workers)) for w in range(workers)]

    def _tasks(self, workers: int):
        """``(ShardTask, None, worker)`` for each batch of the epoch, dealt to the workers in turn (as PyTorch
        deals an iterable dataset's batches)."""
        shares = self._shares(workers)
        for j in range(max(map(len, shares), default=0)):
            for w in range(workers):
                if j < len(shares[w]):
                    yield ShardTask(self.epoch, w, workers, shares[w][j]), None, w

    def _report_skipped(self, skipped: list):
        for what, reason in skipped:
            if what not in self._skipped:
                self._skipped.add(what)
                warnings.warn(f"skipped {what}: {reason}", stacklevel=4)

    def _iter_items(self):
        """Items one by one through fastai's pipelines (loaders with item transforms): in PyTorch's worker
        processes, each reading its share, or here for set-up and ``one_batch``."""
        if not self._main_only and self.workers:
            yield from super(AudioDL, self).__iter__()
            return
        self.randomize()
        self.before_iter()
        for b in self.create_batches(None):
            yield self.after_batch(b if self.device is None else to_device(b, self.device))
        self.after_iter()

    def _planned_items(self) -> int:
        if not isinstance(self.dataset, ShardStream):
            return 0
        if self.exact:
            return sum(
                self.dataset.exact_plan(self.rank * self._workers() + w, self.world_size * self._workers())[2]
                for w in range(self._workers())
            )
        return (self.epoch_size or len(self.dataset)) // self.world_size

    def __len__(self) -> int:
        return sum(map(len, self._shares(self._workers())))

    def before_iter(self):
        self.epoch += 1  # workers start afresh each epoch and take it with them
        super().before_iter()

    def get_idxs(self) -> list:
        return [None] * self._planned_items()

    def _items(self, worker: int, workers: int):
        stream = self.dataset
        (_, x_fs, x_split), *_, (_, y_fs, y_split) = dataset_pipelines(stream.template)
        bad = 0
        for sample in stream.samples(
            epoch=max(self.epoch, 0), rank=self.rank, world=self.world_size, worker=worker, workers=workers
        ):
            decoded = stream.decode_sample(sample)
            if decoded is None:
                bad += 1
                if bad >= _MAX_BAD_RUN:  # an endless training stream of broken samples would never end
                    raise ParameterError(
                        f"{bad} samples in a row could not be decoded (the last from "
                        f"{sample.get('__url__')}): check the shards and the warnings"
                    )
                continue
            x, label = decoded
            try:
                item = self.after_item((compose(x, x_fs, x_split), compose(label, y_fs, y_split)))
                bad = 0
                yield item
            except Exception as err:  # noqa: BLE001
                bad += 1
                _warn_skipped(_sample_name(sample), f"{type(err).__name__}: {err}")

    def create_batches(self, samps):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        items = self._items(worker, workers)
        if not self.exact:  # this worker's share of the epoch's fixed number of batches
            mine = sum(self._shares(workers)[worker])
            items = (item for _, item in zip(range(mine), items))
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
        kwargs = {"exact": self.exact, "epoch_size": self.epoch_size, "allow_partial": self.allow_partial, **kwargs}
        return AudioDL.new(self, dataset, cls=cls, **kwargs)


def shard_template(classes: list, *, multi_label: bool, sample_rate, duration, mono, pad_mode):
    """The loader arguments of ``AudioBlock`` (``variable_length``...) and an empty ``Datasets`` with the type
    transforms of file loaders of these classes (``OpenAudio``, the label's ``Categorize``), for a ``ShardStream``
    to run and for ``test_dl``/``export`` to copy."""
    from fastai.data.core import Datasets
    from fastai.data.transforms import MultiCategorize, OneHotEncode

    from .block import AudioBlock

    block = AudioBlock(sample_rate=sample_rate, duration=duration, mono=mono, pad_mode=pad_mode)
    y_tfms = (
        [MultiCategorize(vocab=classes), OneHotEncode(len(classes))] if multi_label else [FastCategorize(vocab=classes)]
    )
    y_tfms[0].c = len(classes)  # what Categorize's setup sets, which an empty Datasets skips
    template = Datasets(
        [], tfms=[list(block.type_tfms), y_tfms], splits=([], []), dl_type=AudioDL, n_inp=1, do_setup=False
    )
    return block.dls_kwargs, template


def check_shard_args(epoch_size, shuffle_buffer):
    if epoch_size is not None:
        check_positive("epoch_size", epoch_size, integer=True)
    check_positive("shuffle_buffer", shuffle_buffer, integer=True)
