"""The loaders' worker processes: each task fills one whole batch into a shared slot and sends back its number.

PyTorch's ``DataLoader`` workers, as fastai drives them, make each batch item by item, pickle it into a new
shared-memory segment for the main process, and start afresh every epoch (fastai creates a new iterator each
epoch, so ``persistent_workers`` does not keep them). A ``WorkerPool`` instead:

- starts its processes once (forked from the main process at the loader's first multi-process iteration) and keeps
  them for every epoch, so an epoch after the first waits for no process to start;
- hands out tasks of whole batches (the items and their crop draws, drawn by the main process so that a batch
  never depends on which worker fills it), up to ``prefetch_factor`` per worker ahead, and yields the results in
  order;
- lets a worker write its batch straight into one of a fixed set of slots of one shared memory mapping, and send
  only the slot's number and the (small) labels; a slot is reused once nothing holds the batch over it any more (a
  batch kept by the caller is never overwritten: a task finding no free slot sends its batch the usual way) and,
  for a batch copied to a GPU, once that copy is done. The mapping can be registered with CUDA as pinned memory,
  so that copies from it run asynchronously;
- turns a worker's exception into the same exception in the main process (naming the file), and a worker that
  dies (killed, out of memory) into an error naming it and its exit code instead of a hang.

Workers are forked (``multiprocessing`` context ``fork``): the loader's dataset and transforms are those of the
first iteration. Where ``fork`` does not exist the loaders iterate the way fastai does.
"""

from __future__ import annotations

import itertools
import math
import mmap
import multiprocessing
import os
import pickle
import queue
import random
import signal
import traceback
import weakref
from collections import deque

import numpy as np
import torch

__all__ = []  # internal: AudioDL uses it

#: The most memory one pool's slots may take; past it a pool keeps fewer slots (and more batches travel the usual
#: way). Override with the environment variable ``FASTAI_AUDIO_POOL_MB``.
MAX_POOL_BYTES = int(float(os.environ.get("FASTAI_AUDIO_POOL_MB", 2048)) * 2**20)
_POLL_SECONDS = 1.0  # how often a wait for results checks that every worker is still alive


def fork_available() -> bool:
    """Whether this platform can fork worker processes (Linux, and macOS outside fastai's own rule)."""
    return "fork" in multiprocessing.get_all_start_methods()


class SlotMemory:
    """``count`` slots of ``slot_bytes`` bytes in one shared anonymous mapping (``MAP_SHARED``): made in the main
    process before the workers fork, so they write into the memory the main process reads."""

    def __init__(self, count: int, slot_bytes: int):
        self.count, self.slot_bytes = count, slot_bytes
        self._map = mmap.mmap(-1, max(count * slot_bytes, 1))
        self.array = np.frombuffer(self._map, dtype=np.uint8)
        self.pinned = False

    def slot(self, k: int) -> np.ndarray:
        """The bytes of slot ``k``."""
        return self.array[k * self.slot_bytes : (k + 1) * self.slot_bytes]

    def pin(self) -> bool:
        """Register the mapping with CUDA as page-locked memory, so copies from it to a GPU are asynchronous; False
        (and the copies stay synchronous) where CUDA refuses."""
        if not self.pinned and torch.cuda.is_available() and self.array.size:
            code = torch.cuda.cudart().cudaHostRegister(self.array.ctypes.data, self.array.size, 0)
            self.pinned = int(code) == 0
        return self.pinned

    def close(self):
        if self.pinned:
            torch.cuda.cudart().cudaHostUnregister(self.array.ctypes.data)
            self.pinned = False


def _wire(x):
    """A batch part as it crosses to the main process: tensors as NumPy arrays with their type and attributes
    (pickled by value: small labels would otherwise each cost a shared-memory segment)."""
    if isinstance(x, torch.Tensor):
        return ("tensor", type(x), x.detach().cpu().as_subclass(torch.Tensor).numpy(), dict(x.__dict__))
    if isinstance(x, (tuple, list)):
        return ("seq", type(x), [_wire(o) for o in x])
    return ("value", x)


def _unwire(w):
    if w[0] == "tensor":
        _, cls, array, meta = w
        t = torch.from_numpy(array).as_subclass(cls)
        if meta:
            t.__dict__.update(meta)
        return t
    if w[0] == "seq":
        _, cls, parts = w
        return cls(_unwire(o) for o in parts)
    return w[1]


def _picklable(err: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001 - an exception that cannot cross processes is sent as its text
        return RuntimeError(f"{type(err).__name__}: {err}")


def _worker_loop(filler, memory: SlotMemory | None, queues, results, busy, worker: int, seed: int, n: int):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the main process; it then stops the workers
    torch.set_num_threads(1)
    random.seed(seed + worker)
    np.random.seed((seed + worker) % 2**32)
    torch.manual_seed(seed + worker)
    tasks = queues[worker]
    while True:
        task = tasks.get()
        if task is None:
            return
        tid, idxs, draws, slot, int16 = task
        busy[worker] = tid + 1
        try:
            out = memory.slot(slot) if slot is not None else None
            filled = filler.fill(idxs, draws, int16=int16, out=out, n=n)
            if out is not None and np.shares_memory(filled.audio, out):
                audio = (filled.audio.dtype.str, filled.audio.shape)
            else:  # no slot, or a batch larger than one: it travels the usual way (and the slot is free again)
                audio = torch.from_numpy(np.ascontiguousarray(filled.audio))
            filled.audio, filled.rest = None, _wire(filled.rest)
            results.put((tid, "ok", slot, audio, filled))
        except Exception as err:  # noqa: BLE001 - every error reaches the main process, which raises it
            results.put((tid, "error", slot, _picklable(err), traceback.format_exc()))
        busy[worker] = 0


class WorkerPool:
    """``workers`` forked processes filling batches with ``filler`` (see the module's notes).

    Args:
        filler: the ``BatchFiller`` of the loader's dataset.
        workers: processes.
        prefetch: tasks in flight per worker.
        slot_bytes: bytes of one slot (a batch in float32), or 0 for no slots (every batch travels the usual way).
        n: dataset size (for ``on_error='skip'`` replacements).
        seed: seeds the workers' own random generators (for item transforms that draw).
        routed: each task names the worker that fills it (a third element of the task), for fillers that keep
            state per worker (a stream of shards); otherwise the next free worker takes the next task.
    """

    def __init__(self, filler, workers: int, prefetch: int, slot_bytes: int, n: int, seed: int, routed: bool = False):
        self.workers, self.depth = workers, max(1, workers * prefetch)
        # in flight, plus what the consumer holds: the batch it computes on, the one before it (learn.xb, for a model
        # that takes raw audio) and the one the loader keeps ready behind it
        count = self.depth + 3 if slot_bytes else 0
        if count and count * slot_bytes > MAX_POOL_BYTES:
            count = max(0, MAX_POOL_BYTES // slot_bytes)
        self.memory = SlotMemory(count, slot_bytes) if count else None
        self._free = deque(range(count))
        self._copying: dict[int, object] = {}  # slot -> the event of a device copy still reading it
        self._ids = itertools.count()
        ctx = multiprocessing.get_context("fork")
        self.routed = routed
        self._queues = [ctx.Queue() for _ in range(workers)] if routed else [ctx.Queue()] * workers
        self._results = ctx.Queue()
        self._busy = ctx.Array("q", workers, lock=False)
        self._procs = [
            ctx.Process(
                target=_worker_loop,
                daemon=True,
                name=f"fastai_audio loader worker {w}",
                args=(filler, self.memory, self._queues, self._results, self._busy, w, seed, n),
            )
            for w in range(workers)
        ]
        for p in self._procs:
            p.start()
        self._tasks_of: dict[int, list] = {}
        self._stale: set[int] = set()  # tasks of abandoned epochs whose results have not come back yet
        self._closed, self._owner = False, os.getpid()
        weakref.finalize(self, _shutdown, self._procs, self._queues, self._owner)

    # -- slots ---------------------------------------------------------------------------------------------------

    def _take_slot(self) -> int | None:
        for _ in range(len(self._free)):
            slot = self._free.popleft()
            event = self._copying.get(slot)
            if event is None or event.query():
                self._copying.pop(slot, None)
                return slot
            self._free.append(slot)  # still being copied to the device: try the next one
        return None

    def _view(self, slot: int, dtype: str, shape: tuple) -> torch.Tensor:
        """A tensor over slot ``slot``; the slot is free again when the last tensor over it is freed."""
        array = np.frombuffer(self.memory.slot(slot), dtype=np.dtype(dtype), count=math.prod(shape)).reshape(shape)
        weakref.finalize(array, self._free.append, slot)  # torch.from_numpy keeps ``array`` alive with the tensor
        return torch.from_numpy(array)

    def copying(self, slot: int, event):
        """The batch over ``slot`` is being copied to a device until ``event`` (a CUDA event) completes."""
        self._copying[slot] = event

    def in_use(self) -> int:
        """Slots holding a batch that is not yet freed, or whose copy to a device is still running (the tasks of
        abandoned epochs are waited for first)."""
        if self.memory is None:
            return 0
        self._settle()
        copying = sum(1 for slot in self._free if slot in self._copying and not self._copying[slot].query())
        return self.memory.count - len(self._free) + copying

    # -- running an epoch ----------------------------------------------------------------------------------------

    def run(self, tasks, int16: bool = False):
        """Yield ``(FilledBatch, audio tensor, slot or None)`` for each ``(idxs, draws)`` of ``tasks`` (``(idxs,
        draws, worker)`` for a routed pool), in order."""
        if self._closed:
            raise RuntimeError("this loader's worker pool is closed")
        self._check_alive()
        self._settle()
        tasks, pending, done = iter(tasks), deque(), {}
        try:
            while True:
                while len(pending) < self.depth:
                    task = next(tasks, None)
                    if task is None:
                        break
                    tid = next(self._ids)
                    slot = self._take_slot() if self.memory is not None else None
                    self._tasks_of[tid] = task[0]
                    self._queues[task[2] if self.routed else 0].put((tid, task[0], task[1], slot, int16))
                    pending.append(tid)
                if not pending:
                    return
                tid = pending[0]
                while tid not in done:
                    self._receive(done, set(pending))
                msg = done.pop(tid)
                pending.popleft()
                self._tasks_of.pop(tid, None)
                yield self._result(msg)
        finally:
            self._abandon(pending, done)

    def _receive(self, done: dict, wanted: set):
        try:
            msg = self._results.get_nowait()
        except queue.Empty:  # about to wait: first make sure that every worker is there to answer
            while True:
                self._check_alive()
                try:
                    msg = self._results.get(timeout=_POLL_SECONDS)
                    break
                except queue.Empty:
                    pass
        tid, _, slot = msg[:3]
        if tid in wanted:
            done[tid] = msg
            return
        self._stale.discard(tid)
        if slot is not None:  # a task of an abandoned epoch: its slot is free again
            self._free.append(slot)

    def _result(self, msg):
        tid, status, slot = msg[:3]
        if status == "error":
            err, trace = msg[3], msg[4]
            if slot is not None:
                self._free.append(slot)
            err.add_note(f"(raised in a fastai_audio loader worker; its traceback:)\n{trace}")
            raise err
        audio, filled = msg[3], msg[4]
        filled.rest = _unwire(filled.rest)
        if isinstance(audio, torch.Tensor):
            if slot is not None:
                self._free.append(slot)
            return filled, audio, None
        return filled, self._view(slot, *audio), slot

    def _abandon(self, pending, done):
        """An epoch left before its end: drop its queued tasks and free the slots of its finished ones."""
        if self._closed:  # (the queue holds the workers' stop signals now)
            return
        drained = set()
        for tasks in self._queues[: len(self._queues) if self.routed else 1]:
            try:
                while True:
                    task = tasks.get_nowait()
                    drained.add(task[0])
                    if task[3] is not None:
                        self._free.append(task[3])
            except queue.Empty:
                pass
        for msg in done.values():
            if msg[2] is not None:
                self._free.append(msg[2])
        # tasks a worker had taken (or that were still on their way to the queue): their results come later
        self._stale.update(tid for tid in pending if tid not in done and tid not in drained)
        self._tasks_of.clear()

    def _settle(self):
        """Wait for the results of the tasks of abandoned epochs still in the workers' hands, freeing their slots
        (before an epoch starts, and before slots are counted)."""
        while self._stale and not self._closed:
            self._receive({}, set())

    def _check_alive(self):
        for w, p in enumerate(self._procs):
            if not p.is_alive():
                tid = self._busy[w] - 1
                files = self._tasks_of.get(tid)
                during = (
                    ""
                    if files is None
                    else f" while filling a batch of items {files[:8]}"
                    if isinstance(files, list)
                    else f" while filling {files}"
                )
                code = p.exitcode
                why = (
                    f"was killed by signal {-code}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
                    if code is not None and code < 0
                    else f"exited with code {code}"
                )
                self.close()
                raise RuntimeError(
                    f"fastai_audio loader worker {w} (pid {p.pid}) {why}{during}. The loader cannot go on: run again "
                    "with fewer workers or a smaller batch size if memory ran out, or num_workers=0 to see the error "
                    "in this process"
                )

    def close(self):
        """Stop the workers (they finish no further task) and release the slots."""
        if self._closed:
            return
        self._closed = True
        _shutdown(self._procs, self._queues, self._owner)
        if self.memory is not None:
            self.memory.close()


def _shutdown(procs, queues, owner: int):
    if os.getpid() != owner:  # a forked process (another loader's worker) holds a copy: the pool is not its own
        return
    for tasks in queues:  # (one stop signal per worker, in its own queue or the shared one)
        try:
            tasks.put_nowait(None)
        except (ValueError, OSError):  # the queue is already closed
            break
    for p in procs:
        p.join(timeout=2)
        if p.is_alive():
            p.terminate()
            p.join(timeout=2)
