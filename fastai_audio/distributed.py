"""Training in several processes with fastai's own distributed engine (PyTorch DDP through accelerate).

Launch the same script once per GPU (or per CPU process) with ``torchrun`` or ``accelerate launch`` and train inside
``learn.distrib_ctx()``, exactly as fastai documents; an :class:`~fastai_audio.learner.AudioLearner` (what
``audio_learner`` returns) then uses this module's :class:`AudioDistributedTrainer` and :class:`AudioDistributedDL`
in place of fastai's ``DistributedTrainer`` and ``DistributedDL``, which fixes what those get wrong:

- the index broadcast works on every backend (fastai's moves its tensor to CUDA, so gloo runs on CPUs fail);
- ``sync_bn`` defaults to what the device supports (``SyncBatchNorm`` needs CUDA), instead of failing off CUDA;
- ``len(dl)`` is the number of batches each rank really yields, ``drop_last`` included (fastai's overcounts, and a
  one-cycle schedule then ends before it should);
- worker init (``wif``) and the wrapped loader's attributes (``vocab``, ``variable_length``...) are forwarded;
- training batches are laid out so that step ``k`` of ``W`` ranks at batch size ``b`` holds exactly the items of
  step ``k`` of one process at batch size ``W * b`` (each rank one contiguous slice of that big batch), every
  rank yields the same number of batches (DDP hangs otherwise), and length-bucketed variable-length batches stay
  bucketed across ranks;
- validation is an exact pass: every item once, no padding, and the loss and metrics (``AvgMetric``s such as
  ``accuracy``, ``AccumMetric``s such as ``F1Score``) and ``get_preds`` gathered once at the end, so they equal a
  single-process evaluation of the same weights, in dataset order.

Examples:
    A script ``train.py``, started with ``torchrun --standalone --nproc_per_node 2 train.py`` (run alone, it trains
    in one process as usual):

    >>> dls = AudioDataLoaders.from_folder("data", seed=0, batch_tfms=mel_transforms("nsynth"), bs=4)
    >>> learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    >>> with learn.distrib_ctx():                    # one process per GPU; gloo on CPUs
    ...     learn.fit_one_cycle(1, 1e-3)
    [0, ...]
    >>> learn.export("model.pkl")                    # rank 0 writes it, the other ranks skip
"""

from __future__ import annotations

from . import _compat  # noqa: F401  (first: it imports fastai with fastai's import-time warning silenced)

# isort: split
import atexit
import math
import warnings

import torch
import torch.distributed as dist
from fastai.callback.core import GatherPredsCallback
from fastai.distributed import DistributedDL, DistributedTrainer
from fastai.learner import AvgLoss, AvgMetric, AvgSmoothLoss
from fastai.metrics import AccumMetric
from fastai.torch_core import num_distrib, rank_distrib
from fastcore.basics import noop
from torch import nn

from .data.audio_dl import AudioDL, ExactPass
from .data.fill import filler_for
from .data.workers import fork_available
from .errors import ParameterError

__all__ = [
    "AudioDistributedDL",
    "AudioDistributedTrainer",
    "DistributedTimeoutError",
    "batch_state",
    "load_batch_state",
    "rank_positions",
]


def rank_positions(n: int, rank: int, world_size: int, bs: int, *, exact: bool = False) -> list[int]:
    """Positions in an epoch's index list of ``n`` items that rank ``rank`` of ``world_size`` gets.

    The list is cut into groups of ``world_size * bs``; rank ``r`` takes the ``r``-th slice of ``bs`` of every full
    group, so step ``k`` across the ranks is the single-process batch ``k`` at batch size ``world_size * bs``. The
    last, partial group is cut into ``world_size`` contiguous slices. Without ``exact`` (training) ``n`` is first
    padded to a multiple of ``world_size`` by repeating positions from the start (positions ``>= n`` mean
    ``p % n``), so every rank gets ``ceil(n / world_size)`` items and the same number of batches; with ``exact``
    (validation) nothing is repeated and the slices of the last group differ by at most one item.

    Args:
        n: items in the epoch.
        rank: this process's rank, ``0 <= rank < world_size``.
        world_size: number of processes.
        bs: batch size of each process.
        exact: no padding (validation).

    Returns:
        Positions ``0 <= p < n`` (``n_padded`` without ``exact``), in the order the rank uses them.

    Examples:
        >>> rank_positions(10, 0, 2, 2), rank_positions(10, 1, 2, 2)
        ([0, 1, 4, 5, 8], [2, 3, 6, 7, 9])
        >>> rank_positions(5, 1, 2, 4), rank_positions(5, 1, 2, 4, exact=True)  # position 5 repeats item 0
        ([3, 4, 5], [2, 3, 4])
    """
    if world_size < 1 or not 0 <= rank < world_size or bs < 1:
        raise ParameterError(
            f"rank {rank} of world_size {world_size} with bs {bs}: need 0 <= rank < world_size and bs >= 1"
        )
    total = n if exact else math.ceil(n / world_size) * world_size
    group = world_size * bs
    full = total // group
    out = [g * group + rank * bs + j for g in range(full) for j in range(bs)]
    start, rest = full * group, total - full * group
    lo = start + rank * rest // world_size
    hi = start + (rank + 1) * rest // world_size
    return out + list(range(lo, hi))


def _batches(items: int, full_groups: int, bs: int, drop_last: bool) -> int:
    last = items - full_groups * bs
    return full_groups + (last // bs if drop_last else math.ceil(last / bs))


class AudioDistributedDL(ExactPass, DistributedDL):
    """fastai's ``DistributedDL`` made correct for any backend and exact for validation (see the module's notes).

    Wraps one loader of one rank. ``exact=False`` (training): every rank gets ``ceil(n / world_size)`` items
    (repeating a few from the start) and the same number of batches; batches are gathered across ranks at every
    step, as fastai does. ``exact=True`` (validation): every item once, no padding, nothing gathered until
    :class:`AudioDistributedTrainer` gathers the pass's results at its end.

    Args:
        dl: the loader to shard (an ``AudioDL``, or any fastai ``TfmdDL``).
        rank: this process's rank (default: the launcher's ``RANK``).
        world_size: number of processes (default: the launcher's ``WORLD_SIZE``).
        device: where batches go (default: ``dl.device``).
        exact: the validation layout.

    Examples:
        >>> ddl = AudioDistributedDL(dls.train, rank=1, world_size=2)   # what rank 1 of 2 iterates
        >>> len(dls.train.dataset), dls.train.bs, len(ddl), len(list(ddl))  # 4 items a rank: one batch of 4
        (8, 4, 1, 1)
    """

    def __init__(self, dl, rank: int | None = None, world_size: int | None = None, device=None, exact: bool = False):
        super().__init__(dl, rank=rank, world_size=world_size, device=device)
        self.world_size = max(int(self.world_size), 1)
        self.exact = exact
        self.n = dl.n

    def __getattr__(self, name):
        # the wrapped loader's attributes (vocab, variable_length, lengths, after_batch...): fastai forwards to the
        # dataset only
        inner = self.__dict__.get("dl")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)

    def __len__(self) -> int:
        n, bs = self.dl.n, self.bs or 1
        items = len(rank_positions(n, self.rank, self.world_size, bs, exact=self.exact))
        total = n if self.exact else math.ceil(n / self.world_size) * self.world_size
        return _batches(items, total // (self.world_size * bs), bs, self.drop_last)

    def get_idxs(self) -> list:
        idxs = list(self.dl.get_idxs())  # every rank draws (random states stay in step); rank 0's list is used
        if self.world_size > 1 and dist.is_available() and dist.is_initialized():
            box = [idxs]
            dist.broadcast_object_list(box, src=0)  # on the backend's own device: gloo, nccl, ...
            idxs = box[0]
        self.n = len(idxs)
        if not self.n:
            return []
        positions = rank_positions(self.n, self.rank, self.world_size, self.bs or 1, exact=self.exact)
        return [idxs[p % self.n] for p in positions]

    def __iter__(self):
        # the wrapped AudioDL's batch-level decoding (its worker pool, slots and copies to the device) on this rank's
        # share of the epoch; fastai's iteration item by item where it cannot fill whole batches
        inner = self.dl
        filler = filler_for(inner, AudioDL) if isinstance(inner, AudioDL) else None
        workers = 0 if inner._main_only else inner.workers
        if filler is None or (workers and not fork_available()):
            yield from super().__iter__()
            return
        self.randomize()
        self.before_iter()
        tasks = inner.batch_tasks(filler, self.get_idxs())
        yield from inner._deliver(filler, tasks, workers, device=self.device, after_batch=self.after_batch)
        self.after_iter()

    def wif(self):
        # fastai's worker init sets these on the loader it iterates, this one: the wrapped loader makes the batches
        self.dl.num_workers, self.dl.offs = self.num_workers, self.offs
        self.dl.wif()

    def _pass_order(self):
        bs = self.bs or 1
        order = [p for r in range(self.world_size) for p in rank_positions(self.n, r, self.world_size, bs, exact=True)]
        return torch.tensor(order).argsort()  # the ranks' rows back in the pass's order


class AudioDistributedTrainer(DistributedTrainer):
    """fastai's ``DistributedTrainer`` with :class:`AudioDistributedDL` loaders and an exact validation pass.

    ``AudioLearner.distrib_ctx()`` and ``AudioLearner.to_distributed()`` add it; there is no need to use it
    directly. ``sync_bn=None`` (the default) converts batch norm to ``SyncBatchNorm`` on CUDA only; asking for it
    elsewhere warns and keeps per-process batch norm. Other arguments go to accelerate's ``Accelerator``.

    Examples:
        >>> AudioDistributedTrainer().sync_bn == torch.cuda.is_available()  # SyncBatchNorm where it runs
        True
    """

    def __init__(self, sync_bn: bool | None = None, **kwargs):
        cuda = torch.cuda.is_available()
        if sync_bn and not cuda:
            warnings.warn(
                "sync_bn=True needs CUDA (SyncBatchNorm runs on GPUs only): batch norm statistics stay "
                "per process; pass sync_bn=False to silence this",
                stacklevel=3,
            )
        if not cuda:
            kwargs.setdefault("cpu", True)  # accelerate starts no process group on CPUs without it: each rank
            # would train a model of its own
        super().__init__(sync_bn=cuda if sync_bn is None else bool(sync_bn and cuda), **kwargs)
        if _leave_process_group not in _AT_EXIT:
            _AT_EXIT.append(_leave_process_group)
            atexit.register(_leave_process_group)

    def _wrapped(self, dl, exact: bool):
        if isinstance(dl, AudioDistributedDL) and dl.exact == exact or getattr(dl, "splits_ranks", False):
            return dl  # (streamed shards: every rank reads its own share already)
        while isinstance(dl, DistributedDL):
            dl = dl.dl
        return AudioDistributedDL(dl, device=self.accelerator.device, exact=exact)

    def before_fit(self):
        # fastai's before_fit, without its wrapping of the loaders (which reads ``model.device``, an attribute DDP
        # has on CUDA only)
        _heartbeat_group()
        if num_distrib() > 1 and self.accelerator.num_processes != num_distrib():
            raise ParameterError(
                f"the launcher started {num_distrib()} processes but accelerate joined "
                f"{self.accelerator.num_processes} (distributed type {self.accelerator.distributed_type}): the ranks "
                "would train separate models; on CPUs pass cpu=True to distrib_ctx, and launch with torchrun"
            )
        model = self.learn.model
        self.learn.model = self.accelerator.prepare(
            nn.SyncBatchNorm.convert_sync_batchnorm(model) if self.sync_bn else model
        )
        self.old_dls = list(self.dls)
        self.learn.dls.loaders = [self._wrapped(dl, exact=i > 0) for i, dl in enumerate(self.old_dls)]
        if rank_distrib():
            self.learn.logger = noop
        _check_same_data(self.learn.dls)
        _share_batch_state(self.old_dls)

    def before_train(self):
        self.learn.dl = self._wrapped(self.learn.dl, exact=False)

    def after_fit(self):
        model = self.learn.model  # (unwrapped only if accelerate wrapped it: one process may run without DDP)
        self.learn.model, self.learn.dls.loaders = getattr(model, "module", model), self.old_dls

    def before_validate(self):
        self.learn.dl = self._wrapped(self.learn.dl, exact=True)

    def after_validate(self):
        """Put the exact pass together: metric sums over every rank, predictions in the pass's order."""
        dl = self.learn.dl
        if not getattr(dl, "exact", False) or not hasattr(dl, "gather") or dl.world_size == 1:
            return
        recorder = getattr(self.learn, "recorder", None)
        metrics = [recorder.loss, *recorder.metrics] if recorder is not None else []
        for m in metrics:
            if isinstance(m, (AvgMetric, AvgLoss)) and not isinstance(m, AvgSmoothLoss):
                sums = torch.tensor([float(m.total), float(m.count)], dtype=torch.float64)
                dist.all_reduce(sums)
                m.total, m.count = float(sums[0]), int(sums[1])
            elif isinstance(m, AccumMetric):
                if m.preds:
                    m.preds, m.targs = [dl.gather(torch.cat(m.preds))], [dl.gather(torch.cat(m.targs))]
            elif not getattr(self, "_warned", False):
                self._warned = True
                warnings.warn(
                    f"metric {getattr(m, 'name', m)!r} ({type(m).__name__}) is computed on each rank's share "
                    "of the validation set only: use an AvgMetric or AccumMetric (fastai's metrics are) to "
                    "get the whole set's value",
                    stacklevel=2,
                )
        for cb in self.learn.cbs:
            if isinstance(cb, GatherPredsCallback) and hasattr(cb, "preds"):
                for name in ("preds", "targets", "inputs", "losses"):
                    if hasattr(cb, name) and not isinstance(getattr(cb, name), list):
                        setattr(cb, name, dl.gather(getattr(cb, name)))


_AT_EXIT: list = []
_HEARTBEAT: list = []  # a gloo group of every rank, only for finding out which rank stopped answering

#: Seconds a collective operation (a gradient all-reduce, a gather) waits for every rank before it fails: torch's
#: own default is 30 minutes of silence. ``distrib_ctx(timeout=...)`` and ``fastai-audio train --dist-timeout``.
DEFAULT_TIMEOUT = 300.0


def _heartbeat_group():
    """A second process group (gloo, on any device) made once per process by every rank together, at its first fit:
    when the training group times out, the ranks still answering meet on it, and rank 0 learns who did not."""
    if not _HEARTBEAT and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        _HEARTBEAT.append(dist.new_group(backend="gloo"))


class DistributedTimeoutError(RuntimeError):
    """A collective operation of data-parallel training waited longer than the process group's timeout: some rank
    stopped answering (hung, stopped, out of memory, or its machine gone). ``ranks``: those that did not answer,
    when this rank could tell (rank 0 can).

    Examples:
        >>> err = DistributedTimeoutError("rank 1 stopped answering", ranks=[1])
        >>> err.ranks
        [1]
    """

    def __init__(self, message: str, ranks: list | None = None):
        super().__init__(message)
        self.ranks = ranks


def is_timeout(err: BaseException) -> bool:
    """Whether ``err`` is a collective operation that gave up waiting (gloo's and NCCL's messages, and
    ``torch.distributed.DistBackendError``)."""
    text = f"{type(err).__name__}: {err}".lower()
    return "timed out" in text or "timeout" in text or "watchdog" in text


def diagnose_timeout(err: BaseException, timeout: float) -> DistributedTimeoutError:
    """The error to raise for the timed-out collective ``err``: the ranks still answering meet on the heartbeat
    group, and rank 0 names those that did not come."""
    rank, ranks = rank_distrib(), None
    why = "could not tell which rank: this one is not rank 0, which names it"
    if _HEARTBEAT:
        from datetime import timedelta

        try:
            dist.monitored_barrier(
                group=_HEARTBEAT[0], timeout=timedelta(seconds=min(30.0, timeout)), wait_all_ranks=True
            )
            why = "every rank answers the heartbeat now: the operation was slow, not stuck; raise the timeout"
        except RuntimeError as barrier:
            import re

            found = re.search(r"Ranks? ([\d, ]+) failed to pass", str(barrier))
            if found:
                ranks = [int(r) for r in found.group(1).replace(",", " ").split()]
                why = f"rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))} stopped answering"
    return DistributedTimeoutError(
        f"rank {rank}: a collective operation of data-parallel training waited more than {timeout:g} s for the "
        f"other ranks; {why} (hung, stopped, out of memory or gone: see its log). Raise the limit with "
        f"distrib_ctx(timeout=...) / --dist-timeout if a step can take that long. ({type(err).__name__}: "
        f"{str(err).splitlines()[0][:200] if str(err) else ''})",
        ranks,
    )


def _leave_process_group():
    """At exit, leave the process group accelerate joined: a process that exits with it still up can abort in
    its communication threads' destructors ("terminate called without an active exception", SIGABRT)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _check_same_data(dls):
    """Every rank must have built the same data set and split: a random split without a seed differs per rank and
    would validate on training items. All ranks compare a fingerprint; a difference is an error naming the fix."""
    if num_distrib() <= 1 or not dist.is_initialized():
        return
    fingerprint = []
    for dl in dls.loaders:
        items = getattr(dl.dataset, "items", None)
        head = [str(o) for o in list(items[:3]) + list(items[-3:])] if items is not None and len(items) else []
        fingerprint.append((len(dl.dataset) if getattr(dl, "splits_ranks", False) else dl.n, head))
    every = [None] * num_distrib()
    dist.all_gather_object(every, fingerprint)
    if any(f != every[0] for f in every):
        raise ParameterError(
            f"rank {rank_distrib()}: the ranks built different data sets or splits (sizes per rank: "
            f"{[[n for n, _ in f] for f in every]}); build the DataLoaders the same way in every process, with a "
            "fixed seed for random splits (e.g. valid_pct=0.2, seed=0)"
        )


def batch_state(dls) -> list[dict]:
    """The tensors that the batch transforms of each loader of ``dls`` (``DataLoaders`` or a list of loaders) hold:
    the spectral steps' buffers, among them statistics estimated from data such as ``SpecNormalize``'s mean and
    std (and the window and filterbank, the same in every process), and other transforms' tensor attributes.

    Returns:
        ``[{(transform index, name): tensor}]``, one dict per loader, tensors on the CPU.

    Examples:
        >>> state = batch_state(dls)                 # one dict per loader: MelSpectrogram, AmplitudeToDB, SpecNormalize
        >>> sorted(name for _, name in state[0]), state[0][(2, "mean")].shape
        (['fb', 'mean', 'std', 'window'], torch.Size([1, 1, 64, 1]))
        >>> load_batch_state(dls, state)             # e.g. into loaders built the same way in another process
    """
    return [
        {(i, k): v.detach().cpu() for i, t in enumerate(dl.after_batch.fs) for k, v in _tensors_of(t).items()}
        for dl in _loaders(dls)
    ]


def load_batch_state(dls, state: list[dict]):
    """Put :func:`batch_state`'s tensors into the batch transforms of ``dls``, each on the device of the tensor it
    replaces, if any (``dls`` built the same way, with the same batch transforms).

    Examples:
        >>> torch.save(batch_state(dls), "batch_state.pt")
        >>> load_batch_state(dls, torch.load("batch_state.pt"))
    """
    for dl, tensors in zip(_loaders(dls), state):
        for i, t in enumerate(dl.after_batch.fs):
            mine = {k: v for (j, k), v in tensors.items() if j == i}
            if not mine:
                continue
            module = getattr(t, "module", None)
            if isinstance(module, nn.Module):  # a spectral step: its buffers (SpecNormalize's mean and std)
                have = dict(module.named_buffers())
                module.load_state_dict({k: v.to(_device(have.get(k), v)) for k, v in mine.items()}, strict=False)
            else:
                for k, v in mine.items():
                    setattr(t, k, v.to(_device(getattr(t, k, None), v)))


def _tensors_of(t) -> dict:
    """The tensors a batch transform holds: a spectral step's buffers, or the transform's tensor attributes."""
    module = getattr(t, "module", None)
    if isinstance(module, nn.Module):
        return dict(module.named_buffers())
    return {k: v for k, v in vars(t).items() if isinstance(v, torch.Tensor)}


def _device(old, new: torch.Tensor) -> torch.device:
    return old.device if isinstance(old, torch.Tensor) else new.device


def _loaders(dls) -> list:
    """The loaders of a ``DataLoaders`` (or a list of loaders), unwrapped from any ``DistributedDL``."""
    out = []
    for dl in getattr(dls, "loaders", dls):
        while isinstance(dl, DistributedDL):
            dl = dl.dl
        out.append(dl)
    return out


def _share_batch_state(dls):
    """Every rank normalises like rank 0: statistics estimated from random training batches (``SpecNormalize``)
    differ per process unless every process seeded Python's ``random`` alike, and the ranks would then train one
    model on differently scaled inputs."""
    if num_distrib() <= 1 or not dist.is_initialized():
        return
    box = [batch_state(dls)]
    dist.broadcast_object_list(box, src=0)
    load_batch_state(dls, box[0])
