"""``AudioDL``: a fastai ``TfmdDL`` that collates audio safely and, for clips of different lengths,
pads each batch to its longest clip with a length-bucketed sampler that keeps the padding small."""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import warnings

import numpy as np
import torch
from fastai.data.core import TfmdDL
from fastai.torch_core import to_detach
from fastcore.meta import delegates

from .._compat import input_item, input_pipeline, item_maker
from .._validate import check_choice, check_positive
from ..core import TensorAudio
from ..errors import AudioFileError
from ..functional import pad
from ..io import audio_info
from ..packed import PackedClip
from ..transforms.item import find_opener
from ..transforms.spectral import as_batch_transforms
from .fill import check_batchable, filler_for, meta_of_batch
from .transfer import DeviceFeed
from .workers import WorkerPool, fork_available

__all__ = ["AudioDL"]


_OWN = object()  # (the loader's own device)


def _chunks(idxs, bs: int, drop_last: bool):
    """Batches of ``bs`` indices from ``idxs`` (which may be endless, as ``show_batch(unique=True)``'s are)."""
    it = iter(idxs)
    while True:
        batch = list(itertools.islice(it, bs))
        if not batch or (drop_last and len(batch) < bs):
            return
        yield batch


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

    Batches are filled whole (``fill.py``): one task reads every clip of a batch straight into one array, in the
    main process (``num_workers=0``) or in worker processes that start once and serve every epoch, writing into
    reused shared slots (``workers.py``). A batch bound for a GPU crosses as ``int16`` where its files are 16-bit
    PCM, is copied from pinned memory while the previous step computes, and becomes float32 on the device: the same
    values, half the bytes. Loaders with item transforms (``item_tfms``), or datasets that are not files opened by
    ``OpenAudio``, make their batches item by item as fastai does, minus fastai's per-item wrappers (the seam's
    ``item_maker`` shim).

    Args:
        variable_length: pad each batch to its longest clip (``AudioBlock(duration=None)``).
        pad_mode: ``'zeros'`` or ``'repeat'``: how clips are padded.
        sample_rate: the clips' rate, for the lengths read from headers.
        on_error: ``'skip'`` a file that cannot be decoded (its row takes the next item, and a warning names it)
            or ``'raise'`` its error.
        prefetch_factor: batches each worker prepares ahead.
        **kwargs: fastai's ``TfmdDL`` arguments (``bs``, ``shuffle``, ``num_workers``, ``device``...). The
            spectral steps in ``after_batch`` (``nn.Module``s) run through the ``SpectralTransform`` adapter.

    Examples:
        >>> dls = AudioDataLoaders.from_folder("speech_commands", duration=None, valid_pct=0.2, bs=4, seed=0)
        >>> type(dls.train).__name__, dls.train.variable_length
        ('AudioDL', True)
        >>> xb, yb = dls.train.one_batch()
        >>> xb.lengths                             # samples per clip before padding (these clips are all 1 s)
        tensor([16000, 16000, 16000, 16000])
    """

    def __init__(
        self,
        dataset=None,
        variable_length: bool = False,
        pad_mode: str = "zeros",
        sample_rate: int | None = None,
        lengths=None,
        on_error: str = "raise",
        prefetch_factor: int = 2,
        **kwargs,
    ):
        self.variable_length, self.pad_mode, self.sample_rate = variable_length, pad_mode, sample_rate
        self.on_error = check_choice("on_error", on_error, ("raise", "skip"))
        self.prefetch_factor = check_positive("prefetch_factor", prefetch_factor, integer=True)
        self.workers = int(kwargs.get("num_workers", 0) or 0)
        self._lengths, self._main_only, self._pool, self._pool_key, self._skipped = lengths, False, None, None, set()
        if "after_batch" in kwargs:  # the spectral steps (nn.Modules) as batch transforms, through fastai's adapter
            kwargs["after_batch"] = as_batch_transforms(kwargs["after_batch"])
        super().__init__(dataset, **kwargs)

    def new(self, dataset=None, **kwargs):
        lengths = self._lengths if dataset is None else None
        kwargs = {
            "variable_length": self.variable_length,
            "pad_mode": self.pad_mode,
            "on_error": self.on_error,
            "sample_rate": self.sample_rate,
            "lengths": lengths,
            "prefetch_factor": self.prefetch_factor,
            "num_workers": self.workers,
            **kwargs,
        }
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
            if isinstance(o, PackedClip):
                return o.length
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

    # -- batch-level decoding -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def main_process(self):
        """Within the block, iterate in the main process (no worker starts): what ``one_batch`` and set-up use."""
        before, self._main_only = self._main_only, True
        try:
            yield self
        finally:
            self._main_only = before

    def one_batch(self):
        with self.main_process():
            return super().one_batch()

    def close(self):
        """Stop this loader's worker processes now (they also stop when the loader is garbage collected, and the
        next multi-process iteration starts new ones)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __iter__(self):
        filler = filler_for(self, AudioDL)
        workers = 0 if self._main_only else self.workers
        if filler is None or (workers and not fork_available()):
            yield from super().__iter__()
            return
        self.randomize()
        self.before_iter()
        yield from self._deliver(filler, self.batch_tasks(filler, self.get_idxs()), workers)
        self.after_iter()

    def batch_tasks(self, filler, idxs):
        """The ``(items, crop draws)`` task of each batch of ``idxs`` (the crops drawn here, from the loader's own
        generator, for training with a fixed duration; centred otherwise)."""
        rng = random.Random(self.rng.random())
        train = filler.split_idx == 0 and filler.config.duration is not None
        return ((b, [rng.random() for _ in b] if train else None) for b in _chunks(idxs, self.bs, self.drop_last))

    def _deliver(self, filler, tasks, workers: int, device=_OWN, after_batch=None):
        """The batches of ``tasks`` (``(idxs, draws)``, or ``(task, draws, worker)`` for a routed filler), filled in
        the worker pool (or here, without workers) and copied to ``device`` (default: the loader's) one batch ahead,
        through ``after_batch`` (default: the loader's). A batch with no rows (an exact pass's share that ended
        early) is left out."""
        device = self.device if device is _OWN else device
        after_batch = after_batch or self.after_batch
        int16 = device is not None and device.type != "cpu"
        if workers:
            pool = self._worker_pool(filler, workers)
            source = pool.run(tasks, int16=int16)
        else:
            pool = None
            source = (
                (f, torch.from_numpy(f.audio), None)
                for f in (filler.fill(t[0], t[1], int16=int16, n=len(self.dataset)) for t in tasks)
            )
        feed = DeviceFeed(device, pool)
        ahead = None
        for filled, audio, slot in source:
            self._report_skipped(filled.skipped)
            if not audio.shape[0]:
                continue
            ticket = feed.put(filled, audio, slot)  # the copy of this batch starts while the last one computes
            if ahead is not None:
                yield after_batch(feed.get(ahead))
            ahead = ticket
        if ahead is not None:
            yield after_batch(feed.get(ahead))

    def _worker_pool(self, filler, workers: int):
        """The loader's worker pool, started at its first multi-process iteration and kept; started again when it
        was closed, or when the way batches are filled changed since (its workers hold the filler of their start)."""
        key = (type(filler), filler.config, workers, self.bs, getattr(filler, "pool_key", None))
        if self._pool is not None and (self._pool._closed or self._pool_key != key):
            self._pool.close()
            self._pool = None
        if self._pool is None:
            config = filler.config
            fixed = config.duration is not None and config.sample_rate is not None and config.mono
            slot_bytes = self.bs * config.num_samples() * 4 if fixed and not self.variable_length else 0
            seed = torch.initial_seed() % 2**31  # (the workers' own generators, for item transforms that draw)
            self._pool = WorkerPool(
                filler,
                workers,
                self.prefetch_factor,
                slot_bytes,
                len(self.dataset),
                seed,
                routed=getattr(filler, "routed", False),
            )
            self._pool_key = key
        return self._pool

    def _report_skipped(self, skipped: list):
        new = [(p, r) for p, r in skipped if p not in self._skipped]
        if new:
            self._skipped.update(p for p, _ in new)
            lines = "\n".join(f"  {p}: {r}" for p, r in new)
            warnings.warn(
                f"skipped {len(new)} bad audio file(s), their rows filled with the next items "
                f"(on_error='skip'):\n{lines}",
                stacklevel=3,
            )

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pool"] = None  # worker processes and their shared memory belong to this process
        return state

    def create_batch(self, b):
        first = b[0]
        positions = [j for j, o in enumerate(first) if isinstance(o, TensorAudio)] if isinstance(first, tuple) else []
        lengths = {}
        for j in positions:
            xs = [s[j] for s in b]
            check_batchable(xs, self.variable_length)
            if self.variable_length:
                longest = max(x.shape[-1] for x in xs)
                lengths[j] = [x.shape[-1] for x in xs]
                b = [s[:j] + (pad(s[j], longest, self.pad_mode),) + s[j + 1 :] for s in b]
        batch = super().create_batch(b)
        for j in positions:
            x = batch[j]
            x.__dict__ = meta_of_batch(x.__dict__)
            if j in lengths:
                x.lengths = torch.tensor(lengths[j], dtype=torch.long)
        return batch

    def create_batches(self, samps):
        make = item_maker(self)
        if make is None:
            yield from super().create_batches(samps)
            return
        yield from map(self.do_batch, self.chunkify(o for o in map(make, samps) if o is not None))
