"""Shared-memory slots that forked ``DataLoader`` workers collate audio batches into, reused batch after batch.

PyTorch's workers hand each batch to the main process in a new shared-memory segment: a 64 x 4 s batch at 16 kHz
is 16 MB, and a new segment of that size costs ~14 ms of page allocation and page faults on a small virtual
machine, a quarter of what the worker spends on the batch. A ``BatchPool`` is one shared anonymous mapping made by
the main process before the workers are forked, cut into ``slots`` batch-sized slots per worker. A worker stacks
its batch into one of its free slots and sends only the slot's number; the main process turns that back into a
tensor over the same memory, and the slot becomes free again once every tensor sharing that memory is gone. A
batch that is still held (``learn.xb``, a list of batches) is never overwritten: a worker that finds all its
slots taken collates the usual way.

Only the ``fork`` start method shares the mapping; with ``spawn`` or ``forkserver`` loaders do what PyTorch does.
"""

from __future__ import annotations

import itertools
import mmap
import multiprocessing
import os
import weakref

import numpy as np
import torch

__all__ = []  # internal: AudioDL uses it, users never do

#: Upper bound on one pool (all its workers' slots): larger batches keep PyTorch's own shared-memory path.
MAX_POOL_BYTES = 512 * 2**20

_POOLS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # key -> pool, in the main process
_KEYS = itertools.count()
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


def workers_are_forked() -> bool:
    """Whether ``DataLoader`` workers start with ``fork`` here (the default on Linux up to Python 3.13)."""
    method = multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
    return method == "fork"


class BatchPool:
    """``workers * slots`` slots of ``slot_shape`` (``dtype``) in one shared anonymous mapping.

    Made in the main process before the workers fork. A worker calls ``put``; the batch it returns unpickles in
    the main process to a tensor over the slot, and the slot is free again when that tensor's storage is freed.
    """

    def __init__(self, workers: int, slots: int, slot_shape: tuple, dtype: torch.dtype):
        self.workers, self.slots, self.slot_shape, self.dtype = workers, slots, tuple(slot_shape), dtype
        self.slot_numel = int(np.prod(self.slot_shape))
        self.slot_bytes = self.slot_numel * dtype.itemsize
        self.key = (os.getpid(), next(_KEYS))
        self._buf = mmap.mmap(-1, workers * slots * self.slot_bytes)  # MAP_SHARED | MAP_ANONYMOUS
        self._free = mmap.mmap(-1, workers * slots)
        self._free.write(b"\x01" * (workers * slots))
        self._data = torch.frombuffer(self._buf, dtype=dtype)  # the whole mapping, for the workers to write into
        _POOLS[self.key] = self

    @classmethod
    def fitting(cls, workers: int, slots: int, slot_shape: tuple, dtype: torch.dtype) -> BatchPool | None:
        """A pool, or ``None`` when the dtype has no NumPy twin or the pool would exceed ``MAX_POOL_BYTES``."""
        size = workers * slots * int(np.prod(slot_shape)) * dtype.itemsize
        return cls(workers, slots, slot_shape, dtype) if dtype in _NUMPY and 0 < size <= MAX_POOL_BYTES else None

    def put(self, worker: int, xs: list, meta: dict) -> _Pooled | None:
        """In worker ``worker`` (never the main process): ``torch.stack(xs)`` written into a free slot of that
        worker, to become a ``type(xs[0])`` with ``meta`` in the main process; ``None`` when the batch does not fit
        a slot or every slot of the worker is still in use."""
        shape = (len(xs), *xs[0].shape)
        if xs[0].dtype != self.dtype or len(xs) > self.slot_shape[0] or tuple(shape[1:]) != self.slot_shape[1:]:
            return None
        for slot in range(worker * self.slots, (worker + 1) * self.slots):
            if self._free[slot]:
                self._free[slot] = 0
                start = slot * self.slot_numel
                out = self._data[start : start + int(np.prod(shape))].view(shape)
                torch.stack([x.as_subclass(torch.Tensor) for x in xs], out=out)
                return _Pooled(self.key, slot, shape, type(xs[0]), meta)
        return None

    def tensor(self, slot: int, shape: tuple) -> torch.Tensor:
        """In the main process: a tensor over ``slot``; the slot is released when its storage is freed."""
        count = int(np.prod(shape))
        arr = np.frombuffer(self._buf, dtype=_NUMPY[self.dtype], count=count, offset=slot * self.slot_bytes)
        weakref.finalize(arr, self._release, slot)  # the storage holds ``arr``: it dies with the last view
        return torch.from_numpy(arr).view(shape)

    def in_use(self) -> int:
        """How many slots hold a batch that is not yet freed."""
        return self._free[:].count(0)

    def _release(self, slot: int):
        self._free[slot] = 1


class _Pooled:
    """What a worker returns instead of a batch tensor: which slot holds it. Unpickled in the main process."""

    def __init__(self, key, slot, shape, cls, meta):
        self.key, self.slot, self.shape, self.cls, self.meta = key, slot, shape, cls, meta

    def __reduce__(self):
        return _unpool, (self.key, self.slot, self.shape, self.cls, self.meta)


def _unpool(key, slot: int, shape: tuple, cls: type, meta: dict) -> torch.Tensor:
    x = _POOLS[key].tensor(slot, shape).as_subclass(cls)
    x.__dict__ = dict(meta)
    return x
