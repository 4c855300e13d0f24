"""``AudioDL``: a fastai ``TfmdDL`` that collates audio safely and, for clips of different lengths,
pads each batch to its longest clip with a length-bucketed sampler that keeps the padding small."""

from __future__ import annotations

import math

import numpy as np
import torch
from fastai.data.core import TfmdDL
from fastai.torch_core import no_random, to_detach
from fastcore.meta import delegates
from torch.utils.data import get_worker_info

from .._compat import input_item, input_pipeline, item_maker, loader_prefetch_factor, loader_workers
from ..core import TensorAudio
from ..errors import AudioFileError, ParameterError
from ..functional import pad
from ..io import audio_info
from ..transforms.item import find_opener
from .pool import BatchPool, workers_are_forked

__all__ = ["AudioDL"]


def _batch_meta(item_meta: dict) -> dict:
    """A batch's metadata from its first clip's: all of it but the path (one file's path does not describe a
    batch)."""
    return {k: v for k, v in item_meta.items() if k != "path"}


def _describe(x) -> str:
    path = getattr(x, "path", None)
    return str(path) if path is not None else f"a clip of shape {tuple(x.shape)}"


def _check_batchable(xs: list, variable_length: bool):
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


class ExactPass:
    """What a loader sharded over ranks needs for exact validation (mixed into ``AudioDistributedDL`` and
    ``ShardDL``, which set ``exact`` and ``world_size``): nothing gathered per step in an exact pass, and ``gather``
    to put the ranks' rows together once, at its end, in the order ``_pass_order`` gives (default: rank 0's
    first)."""

    def to_detach(self, b, cpu: bool = True, gather: bool = True):
        """Detach (and move to the CPU) ``b``; in training, gathered from every rank at every step, as fastai does.
        In an exact (validation) pass nothing is gathered here: the trainer gathers the whole pass at its end."""
        return to_detach(b, cpu, gather and not self.exact)

    def gather(self, x):
        """In an exact pass, every rank's rows of ``x`` (tensors, or tuples/lists of them, with one row per item this
        rank saw, in order), put together in the pass's order; on every rank."""
        if isinstance(x, (tuple, list)):
            return type(x)(self.gather(o) for o in x)
        if not isinstance(x, torch.Tensor) or x.ndim == 0 or self.world_size == 1:
            return x
        import torch.distributed as dist

        parts = [None] * self.world_size
        dist.all_gather_object(parts, x.detach().cpu())
        out, order = torch.cat(parts), self._pass_order()
        return (out if order is None else out[order]).to(x.device)

    def _pass_order(self):
        return None


@delegates()
class AudioDL(TfmdDL):
    """A ``TfmdDL`` for audio inputs.

    With ``variable_length=True`` (what ``AudioBlock(duration=None)`` selects) each batch is padded at the end to
    its longest clip (``pad_mode`` 'zeros' or 'repeat'), the batch's ``TensorAudio`` carries the true
    ``lengths`` (int64, shape ``(batch,)``), and the training order is length-bucketed: the shuffled items are
    cut into chunks of ``50 * bs``, sorted by length inside each chunk, batched, and the batches shuffled. The
    validation order is sorted by length (``get_preds`` puts predictions back in dataset order).

    Clips that cannot share a batch (different sample rates or channel counts) raise a ``ParameterError`` naming
    two of the files and the argument that fixes it.

    Items are made as fastai makes them, the same pipelines in the same order, without the per-item wrappers
    around them (``do_item``, ``Datasets.__getitem__``, ``TfmdLists.__getitem__``), which cost 3 to 10 us an
    item (the seam's ``item_maker`` shim, ``fastai_audio._compat``).

    Examples:
        >>> dls = AudioDataLoaders.from_folder("speech_commands", duration=None, valid_pct=0.2, bs=4, seed=0)
        >>> type(dls.train).__name__, dls.train.variable_length
        ('AudioDL', True)
        >>> xb, yb = dls.train.one_batch()
        >>> xb.lengths                             # samples per clip before padding (these clips are all 1 s)
        tensor([16000, 16000, 16000, 16000])
    """

    def __init__(self, dataset=None, variable_length: bool = False, pad_mode: str = "zeros",
                 sample_rate: int | None = None, lengths=None, **kwargs):  # fmt: skip
        self.variable_length, self.pad_mode, self.sample_rate = variable_length, pad_mode, sample_rate
        self._lengths = lengths
        super().__init__(dataset, **kwargs)

    def new(self, dataset=None, **kwargs):
        lengths = self._lengths if dataset is None else None
        kwargs = {"variable_length": self.variable_length, "pad_mode": self.pad_mode,
                  "sample_rate": self.sample_rate, "lengths": lengths, **kwargs}  # fmt: skip
        return super().new(dataset=dataset, **kwargs)

    @property
    def lengths(self) -> np.ndarray:
        """Length in samples (at the target rate) of every item, read from file headers, not decoded."""
        if self._lengths is None:
            self._lengths = np.array([self._item_length(i) for i in range(len(self.dataset))])
        return self._lengths

    def _item_length(self, i: int) -> int:
        index, _ = find_opener(self.dataset)
        if index is not None:
            o = input_item(self.dataset, i)
            for t in input_pipeline(self.dataset)[:index]:
                o = t(o)
            try:
                info = audio_info(o)
            except AudioFileError:
                pass
            else:
                rate = self.sample_rate or info.sample_rate
                return math.ceil(info.frames * rate / info.sample_rate)
        return int(self.dataset[i][0].shape[-1])  # not a file-backed item: decode it

    def get_idxs(self):
        idxs = super().get_idxs()
        if not self.variable_length or self.shuffle:
            return idxs
        lengths = self.lengths
        return sorted(idxs, key=lambda i: -lengths[i])

    def shuffle_fn(self, idxs):
        if not self.variable_length:
            return super().shuffle_fn(idxs)
        idxs = self.rng.sample(list(idxs), len(idxs))
        lengths, bs = self.lengths, self.bs or 1
        chunk = 50 * bs
        ordered = []
        for s in range(0, len(idxs), chunk):
            ordered += sorted(idxs[s : s + chunk], key=lambda i: -lengths[i])
        batches = [ordered[s : s + bs] for s in range(0, len(ordered), bs)]
        self.rng.shuffle(batches)
        return [i for b in batches for i in b]

    def before_iter(self):
        super().before_iter()
        self._pool = self._batch_pool()

    def after_iter(self):
        super().after_iter()
        self._pool = None  # its memory goes once the epoch's last batch is freed; the next epoch makes a new one

    def _batch_pool(self) -> BatchPool | None:
        """The shared slots that this epoch's workers collate audio into (see ``pool.py``), made here, in the main
        process, before they fork. ``None``: collate the usual way (no workers, workers that are not forked,
        variable-length batches, batches too large to keep ``prefetch_factor + 1`` per worker)."""
        workers = loader_workers(self)
        if not workers or not self.bs or self.variable_length or not workers_are_forked():
            return None
        if "_audio_item" not in self.__dict__:
            try:
                with no_random(reproducible=False):  # one item to size the slots, leaving every random state as is
                    item = self.do_item(0)
            except Exception:  # noqa: BLE001 - no pool; the workers report the error with its usual context
                item = None
            first = item[0] if isinstance(item, tuple) and item else None
            self._audio_item = (tuple(first.shape), first.dtype) if isinstance(first, TensorAudio) else None
        if self._audio_item is None:
            return None
        shape, dtype = self._audio_item
        return BatchPool.fitting(workers, loader_prefetch_factor(self) + 1, (self.bs, *shape), dtype)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_pool", None)  # a process's own memory map: never pickled (export, spawned workers)
        return state

    def create_batch(self, b):
        first = b[0]
        positions = [j for j, o in enumerate(first) if isinstance(o, TensorAudio)] if isinstance(first, tuple) else []
        lengths = {}
        for j in positions:
            xs = [s[j] for s in b]
            _check_batchable(xs, self.variable_length)
            if self.variable_length:
                longest = max(x.shape[-1] for x in xs)
                lengths[j] = [x.shape[-1] for x in xs]
                b = [s[:j] + (pad(s[j], longest, self.pad_mode),) + s[j + 1 :] for s in b]
        pool, worker = self.__dict__.get("_pool"), get_worker_info()
        if pool is not None and worker is not None and positions and positions[0] == 0:
            pooled = pool.put(worker.id, [s[0] for s in b], _batch_meta(first[0].__dict__))
            if pooled is not None:
                return (pooled, *super().create_batch([s[1:] for s in b]))
        batch = super().create_batch(b)
        for j in positions:
            x = batch[j]
            x.__dict__ = _batch_meta(x.__dict__)
            if j in lengths:
                x.lengths = torch.tensor(lengths[j], dtype=torch.long)
        return batch

    def create_batches(self, samps):
        make = item_maker(self)
        if make is None:
            yield from super().create_batches(samps)
            return
        yield from map(self.do_batch, self.chunkify(o for o in map(make, samps) if o is not None))
