"""Batch-level decoding: one call fills a whole batch of an ``AudioDL``, in a worker process or in the main one.

The per-item path makes each clip a ``TensorAudio`` through fastai's item pipeline and stacks them; at thousands of
clips a second that Python, not the decoding, is what a loader worker spends its time on. A ``BatchFiller`` reads
every clip of a batch straight into one ``(batch, channels, samples)`` array instead:

- a clip whose file is already at the loaders' rate and channel count is read as it is stored, into its row: as
  ``int16`` when every clip of the batch is 8/16-bit PCM and the batch is going to an accelerator (half the bytes
  to copy; ``int16 * 2**-15`` on the device gives libsndfile's float32 values exactly), float32 otherwise;
- any other clip (resampled, downmixed, a ``TensorAudio`` item, ``pad_mode='error'``) goes through ``OpenAudio``'s
  own steps and lands in its row as float32.

Both give the per-item path's values: the window read is ``AudioConfig.window`` at the same crop draw, and the rows
are padded as ``CropPad`` pads. The crop draws come with the task (drawn by the main process), so a batch does not
depend on which worker fills it. Labels and other targets go through their own pipelines item by item (cheap) and
are collated as fastai collates them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from fastai.data.load import fa_collate

from .._compat import dataset_pipelines, item_maker
from ..core import TensorAudio
from ..decode import (
    ESTIMATED_LENGTH_FORMATS,
    INT16_SUBTYPES,
    PCM_SCALE,
    AudioSource,
    check_samples,
    open_audio,
    read_frames,
)
from ..errors import AudioFileError, ParameterError
from ..packed import PackedClip
from ..transforms.item import OpenAudio

__all__ = []  # internal: AudioDL uses it


@dataclass
class FilledBatch:
    """What filling a batch gives: the audio (``(batch, channels, samples)`` array, int16 or float32), its rate,
    the true lengths of variable-length clips, the other parts of the batch (collated), and the files that were
    skipped (with their reason) under ``on_error='skip'``."""

    audio: np.ndarray
    sample_rate: int | None
    lengths: np.ndarray | None
    rest: tuple
    skipped: list = field(default_factory=list)
    meta: dict | None = None  # the batch tensor's attributes, when more than its rate (item transforms may add)
    audio_type: type = TensorAudio


# the steps of fastai's DataLoader that batch-level decoding does in one go: replacing one (a subclass, or an
# argument of the loader) means batches are made the fastai way
_BATCH_STEPS = ("create_item", "do_item", "create_batch", "do_batch", "create_batches", "retain", "chunkify", "sample")


def filler_for(dl, base: type):
    """How batches of the ``AudioDL`` ``dl`` (of class ``base`` or a subclass) are filled: a ``BatchFiller`` (clips
    read straight into the batch) for files opened by ``OpenAudio`` last in the input pipeline with no item or
    before-batch transforms, an ``ItemFiller`` (fastai's items, stacked into the batch) for other fastai
    ``Datasets`` that open audio, or ``None``, where fastai's own iteration runs: a replaced batching step, an
    iterable dataset, several inputs."""
    if any(n in dl.__dict__ or getattr(type(dl), n) is not getattr(base, n) for n in _BATCH_STEPS):
        return None
    pipes = dataset_pipelines(dl.dataset)
    if pipes is None or not dl.indexed or getattr(dl.dataset, "n_inp", 1) != 1 or not dl.bs:
        return None
    fs = pipes[0][1]
    openers = [t for t in fs if isinstance(t, OpenAudio)]
    if len(openers) != 1:
        return None
    if fs[-1] is not openers[0] or has_steps(dl.after_item) or has_steps(dl.before_batch):
        return ItemFiller(dl, pipes)
    return BatchFiller(pipes, dl.variable_length, dl.pad_mode, on_error=getattr(dl, "on_error", "raise"))


def has_steps(method) -> bool:
    """Whether a DataLoader step (``after_item``, ``before_batch``) does anything: a fastai ``Pipeline`` with
    transforms, or a function given to the loader."""
    fs = getattr(method, "fs", None)
    if fs is not None:
        return len(fs) > 0
    return getattr(method, "__func__", None) is None  # not the noop method fastai's DataLoader defines


class BatchFiller:
    """Fills batches of one dataset (see the module's notes), in the main process or in a forked worker."""

    def __init__(self, pipes: list, variable_length: bool, pad_mode: str, on_error: str = "raise"):
        (self.items, fs, self.split_idx), self.targets = pipes[0], pipes[1:]
        self.readers, self.opener = list(fs[:-1]), fs[-1]
        self.config = self.opener.config
        self.variable_length, self.pad_mode, self.on_error = variable_length, pad_mode, on_error

    # -- the parts of one item ---------------------------------------------------------------------------------

    def source(self, i: int):
        """Item ``i`` as the opener receives it (a path, or a ``TensorAudio``): the readers before it applied."""
        o = self.items[i]
        for t in self.readers:
            o = t(o, split_idx=self.split_idx)
        return Path(o) if isinstance(o, str) else o  # (a path, a PackedClip, an AudioSource or a TensorAudio)

    def targets_of(self, i: int) -> tuple:
        """Item ``i``'s other parts (labels...), through their own pipelines."""
        return tuple(compose(items[i], fs, split_idx) for items, fs, split_idx in self.targets)

    # -- a batch -----------------------------------------------------------------------------------------------

    def fill(
        self,
        idxs: list,
        draws: list | None,
        *,
        int16: bool = False,
        out: np.ndarray | None = None,
        n: int | None = None,
    ) -> FilledBatch:
        """Fill the batch of dataset items ``idxs``, cropping item ``k`` at ``draws[k]`` (``None``: centred).

        Args:
            idxs: the items.
            draws: one crop draw per item, or ``None`` for centred crops.
            int16: deliver 8/16-bit PCM as int16 when every clip of the batch can be.
            out: memory to fill (a ``uint8`` buffer at least as large as the batch in float32); default: new.
            n: dataset size, for replacing a bad file under ``on_error='skip'``.
        """
        draws = draws or [None] * len(idxs)
        idxs, skipped = list(idxs), []
        for _ in range(max(n or 0, 1)):
            try:
                return self._fill(idxs, draws, int16, out, n, skipped)
            except RowError as bad:  # a file that broke off while it was read, under on_error='skip'
                skipped.append((bad.error.path, bad.error.reason))
                idxs[bad.row] = (idxs[bad.row] + 1) % n
        raise ParameterError(f"no item of the {n} could be read: check the files with `fastai-audio check`")

    def _fill(self, idxs, draws, int16, out, n, skipped) -> FilledBatch:
        plans = []
        try:
            for k, i in enumerate(idxs):
                plans.append(self._plan(i, draws[k], skipped, n))
                idxs[k] = plans[-1].index  # (a file skipped when it was opened: its replacement)
            audio, rate = self._assemble(plans, int16, out, skip=n is not None)
        finally:
            for p in plans:
                p.close()
        lengths = np.array([p.length for p in plans]) if self.variable_length else None
        rest = _collate([self.targets_of(p.index) for p in plans]) if self.targets else ()
        return FilledBatch(audio, rate, lengths, rest, skipped)

    def _assemble(self, plans: list, int16: bool, out: np.ndarray | None, skip: bool) -> tuple[np.ndarray, int]:
        """The ``(batch, channels, samples)`` array of the opened clips ``plans`` (in ``out`` where it fits) and
        its rate. A clip that fails while it is read raises ``RowError`` (naming its row) when ``skip`` and
        ``on_error='skip'``, its own error otherwise."""
        rate = self._batch_rate(plans)
        length = max(p.length for p in plans) if self.variable_length else self.config.num_samples(rate)
        channels = plans[0].channels
        for p in plans[1:]:
            if p.channels != channels:
                raise ParameterError(
                    f"cannot batch clips with different channel counts: {plans[0].name} has {channels} and "
                    f"{p.name} has {p.channels}; pass mono=True to downmix every clip"
                )
        as_int16 = int16 and all(p.int16 for p in plans)
        dtype = np.dtype(np.int16 if as_int16 else np.float32)
        shape = (len(plans), channels, length)
        if out is None or math.prod(shape) * dtype.itemsize > out.nbytes:
            audio = np.empty(shape, dtype)
        else:
            audio = np.frombuffer(out, dtype=dtype, count=math.prod(shape)).reshape(shape)
        for k, (row, p) in enumerate(zip(audio, plans)):
            try:
                self._fill_row(row, p, dtype)
            except AudioFileError as err:
                if self.on_error != "skip" or not skip:
                    raise
                raise RowError(k, err) from None
        return audio, rate

    def _plan(self, i: int, draw, skipped: list, n: int | None) -> ClipPlan:
        """Open item ``i`` (or, under ``on_error='skip'``, the next good one) and decide how it is read."""
        tried = 0
        while True:
            try:
                return self._open(i, draw)
            except AudioFileError as err:
                if self.on_error != "skip" or n is None or tried >= n:
                    raise
                skipped.append((err.path, err.reason))
                i, tried = (i + 1) % n, tried + 1

    def _open(self, i: int, draw) -> ClipPlan:
        o = self.source(i)
        config = self.config
        if isinstance(o, PackedClip) and config.pad_mode != "error":  # a slice of the cache, at the config's rate
            start, count = config.window(o.length, config.sample_rate, draw)
            count = o.length - start if count < 0 else count
            length = config.num_samples() if config.duration is not None else count
            clip = ClipPlan(i, o.name, o.channels, length, config.sample_rate, packed=o, start=start, count=count)
            clip.int16 = o.dtype == "int16"
            return clip
        if not isinstance(o, _STORED) or config.pad_mode == "error":
            return self._through_opener(i, o, draw)
        return self._open_stored(i, o, str(o), draw, lambda: self._through_opener(i, o, draw))

    def _open_stored(self, i, o, name: str, draw, otherwise) -> ClipPlan:
        """Open the stored audio ``o`` (a path, an ``AudioSource`` or a file's bytes) to be read straight into its
        row when it is at the config's rate and channel count; ``otherwise()`` makes the clip when it is not."""
        config = self.config
        f, info = open_audio(o, name=None if isinstance(o, _STORED) else name)
        try:
            target_rate = config.sample_rate or info.sample_rate
            channels = 1 if config.mono else info.channels
            if (
                target_rate != info.sample_rate
                or channels != info.channels
                or info.frames <= 0
                or info.format in ESTIMATED_LENGTH_FORMATS
            ):
                f.close()
                return otherwise()
            start, count = config.window(info.frames, info.sample_rate, draw)
            count = info.frames - start if count < 0 else count
            length = config.num_samples(target_rate) if config.duration is not None else count
            clip = ClipPlan(i, name, channels, length, target_rate, file=f, info=info, start=start, count=count)
            clip.int16 = info.subtype in INT16_SUBTYPES
            return clip
        except BaseException:
            f.close()
            raise

    def _through_opener(self, i: int, o, draw) -> ClipPlan:
        """A clip made by the opener's own steps (resampling, downmix, ``pad_mode='error'``, tensors): its
        values and its errors are the per-item path's."""
        wav, rate = self.opener.clip(o, draw)
        name = str(o) if isinstance(o, _STORED) else _describe(o)
        return ClipPlan(i, name, wav.shape[-2], wav.shape[-1], rate, wav=wav)

    def _batch_rate(self, plans: list) -> int:
        first = plans[0]
        other = next((p for p in plans if p.rate != first.rate), None)
        if other is not None:
            raise ParameterError(
                f"cannot batch clips with different sample rates: {first.name} is at {first.rate} Hz and "
                f"{other.name} at {other.rate} Hz; pass sample_rate=<Hz> (e.g. 16000) to resample every clip to one "
                "rate"
            )
        return first.rate

    def _fill_row(self, row: np.ndarray, clip: ClipPlan, dtype: np.dtype):
        """Write one clip into its row ``(channels, length)``, padded at the end as ``CropPad`` pads."""
        if clip.wav is not None:
            got = clip.wav.numpy()
            row[:, : got.shape[-1]] = got
        else:
            got = self._read(clip, row, dtype)
        n = got.shape[-1]
        if n < row.shape[-1]:
            if self.pad_mode == "repeat" and n:
                reps = -(-row.shape[-1] // n)
                row[:] = np.tile(row[:, :n], reps)[:, : row.shape[-1]]
            else:
                row[:, n:] = 0

    def _read(self, clip: ClipPlan, row: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if clip.packed is not None:
            return _into_row(clip.packed.samples(clip.start, min(clip.count, row.shape[-1])), row)
        f, info = clip.file, clip.info
        if clip.start:
            f.seek(clip.start)
        count = min(clip.count, row.shape[-1])
        file_dtype = "int16" if dtype == np.int16 else (info.integer_dtype or "float32")
        if clip.channels == 1 and file_dtype == str(dtype):  # straight into the row: no copy
            data = read_frames(f, info, count, file_dtype, out=row[:, :count].T)
        else:
            data = read_frames(f, info, count, file_dtype)
        check_samples(data, info)
        return _into_row(data, row)


def _into_row(data: np.ndarray, row: np.ndarray) -> np.ndarray:
    """``(frames, channels)`` samples into the start of ``row`` ``(channels, length)`` (unless read there already):
    integers into a float32 row scaled by their step, exactly libsndfile's float values. Returns the part filled."""
    filled = row[:, : len(data)]
    if data.dtype != row.dtype:
        np.multiply(data.T, np.float32(PCM_SCALE[str(data.dtype)]), out=filled, casting="unsafe")
    elif not np.shares_memory(data, row):
        filled[...] = data.T
    return filled


class ItemFiller:
    """Fills batches the per-item way: each item made by the loader's own pipelines (its item transforms included)
    and the batch made by its ``do_batch``, then handed over like a ``BatchFiller``'s (into a slot of the worker
    pool). What loaders with item transforms use; crops draw from the worker's own generator, as fastai's do."""

    def __init__(self, dl, pipes: list):
        self.dl, self.split_idx = dl, pipes[0][2]
        self.config = next(t for t in pipes[0][1] if isinstance(t, OpenAudio)).config
        self.on_error = getattr(dl, "on_error", "raise")

    def fill(
        self,
        idxs: list,
        draws: list | None,
        *,
        int16: bool = False,
        out: np.ndarray | None = None,
        n: int | None = None,
    ) -> FilledBatch:
        make = item_maker(self.dl) or self.dl.do_item
        items, skipped = [], []
        for i in idxs:
            tried = 0
            while True:
                try:
                    item = make(i)
                    break
                except AudioFileError as err:
                    if self.on_error != "skip" or n is None or tried >= n:
                        raise
                    skipped.append((err.path, err.reason))
                    i, tried = (i + 1) % n, tried + 1
            if item is not None:
                items.append(item)
        xs = [item[0] for item in items]
        shape = (len(xs), *xs[0].shape)
        dtype = xs[0].dtype
        if (
            out is not None
            and not self.dl.variable_length
            and dtype.is_floating_point
            and all(x.shape == xs[0].shape and x.dtype == dtype for x in xs)
            and math.prod(shape) * dtype.itemsize <= out.nbytes
        ):
            check_batchable(xs, False)  # straight into the slot: one copy, as the items are stacked
            audio = torch.frombuffer(out, dtype=dtype, count=math.prod(shape)).view(shape)
            torch.stack([x.as_subclass(torch.Tensor) for x in xs], out=audio)
            x, rest = xs[0], self.dl.do_batch([item[1:] for item in items]) if len(items[0]) > 1 else ()
            meta, lengths = meta_of_batch(x.__dict__), None
        else:
            x, *rest = self.dl.do_batch(items)
            audio = x.detach().as_subclass(torch.Tensor)
            meta = dict(x.__dict__)
            lengths = meta.pop("lengths", None)
        return FilledBatch(
            audio.numpy(),
            meta.get("sample_rate"),
            None if lengths is None else lengths.numpy(),
            tuple(rest),
            skipped,
            meta=meta,
            audio_type=type(x),
        )


def meta_of_batch(item_meta: dict) -> dict:
    """A batch's metadata from its first clip's: all of it but the path (one file's path does not describe a
    batch)."""
    return {k: v for k, v in item_meta.items() if k != "path"}


def check_batchable(xs: list, variable_length: bool):
    """Mixed rates, channel counts or (for fixed-length batches) lengths get an error naming two culprits."""
    shapes = [tuple(x.as_subclass(torch.Tensor).shape) for x in xs]  # (fastai's metadata hook costs ~4 us a read)
    rates = [x.__dict__.get("sample_rate") for x in xs]
    first, (rate0, shape0) = xs[0], (rates[0], shapes[0])
    for x, rate, shape in zip(xs[1:], rates[1:], shapes[1:]):
        if rate != rate0:
            raise ParameterError(
                f"cannot batch clips with different sample rates: {_describe(first)} is at {rate0} Hz and "
                f"{_describe(x)} at {rate} Hz; pass sample_rate=<Hz> (e.g. 16000) to resample every clip to one rate"
            )
        if shape[:-1] != shape0[:-1]:
            raise ParameterError(
                f"cannot batch clips with different channel counts: {_describe(first)} has {shape0[-2]} and "
                f"{_describe(x)} has {shape[-2]}; pass mono=True to downmix every clip"
            )
        if not variable_length and shape[-1] != shape0[-1]:
            raise ParameterError(
                f"cannot batch clips of different lengths: {_describe(first)} has {shape0[-1]} samples and "
                f"{_describe(x)} has {shape[-1]}; pass duration=<seconds> to crop/pad every clip, "
                "or duration=None for padded variable-length batches"
            )


class RowError(Exception):
    """A clip that failed while it was read into row ``row`` (skipped and replaced under ``on_error='skip'``)."""

    def __init__(self, row: int, error: AudioFileError):
        super().__init__(row, error)
        self.row, self.error = row, error


class ClipPlan:
    """One item of a batch being filled: what it is, and how it is read (an open file, or a tensor already made)."""

    int16 = False

    def __init__(
        self, index, name, channels, length, rate, *, wav=None, file=None, info=None, packed=None, start=0, count=-1
    ):
        self.index, self.name, self.channels, self.length, self.rate = index, name, channels, length, rate
        self.wav, self.file, self.info, self.packed, self.start, self.count = wav, file, info, packed, start, count

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


#: What the decode core opens itself (a file, or audio an item refers to), read straight into a batch row.
_STORED = (Path, AudioSource)


def _describe(x) -> str:
    """A clip as error messages name it: its file, or its shape."""
    if isinstance(x, AudioSource):
        return str(x)
    path = getattr(x, "path", None)
    return str(path) if path is not None else f"a clip of shape {tuple(x.shape)}"


def compose(o, fs, split_idx):
    """``o`` through the transforms ``fs`` in order, as a fastai ``Pipeline`` of them applies them."""
    for t in fs:
        o = t(o, split_idx=split_idx)
    return o


def _collate(rows: list) -> tuple:
    """The other parts of a batch, collated as fastai collates them (``fa_collate``), keeping their types."""
    return tuple(fa_collate(list(column)) for column in zip(*rows))


def as_batch(filled: FilledBatch, audio: torch.Tensor) -> tuple:
    """The ``(TensorAudio, *rest)`` batch for a filled batch whose audio is the tensor ``audio`` (a view of the
    filled memory, or a copy on a device)."""
    x = audio.as_subclass(filled.audio_type)
    x.__dict__ = dict(filled.meta) if filled.meta is not None else {"sample_rate": filled.sample_rate}
    if filled.lengths is not None:
        x.lengths = torch.as_tensor(filled.lengths, dtype=torch.long)
    return (x, *filled.rest)
