"""Filled batches to the loader's device: on a GPU, copied on a side stream one batch ahead of the training step.

``AudioDL`` hands each batch to a ``DeviceFeed`` (``put``) as soon as it is filled and takes the previous one back
(``get``) to yield it: on CUDA the copy of batch ``k + 1`` (asynchronous, from the pinned slot it was filled in)
then runs while step ``k`` computes, and ``get`` only makes the training stream wait for it on the GPU, never the
Python thread. 16-bit PCM crosses as ``int16`` and becomes float32 on the device (``x * 2**-15``: libsndfile's float
values exactly). On the CPU (or with no device) the batch is the filled memory itself, as float32.
"""

from __future__ import annotations

import torch
from fastai.torch_core import to_device

from ..decode import PCM_SCALE
from .fill import as_batch

__all__ = []  # internal: AudioDL uses it


class DeviceFeed:
    """Moves filled batches to ``device`` (see the module's notes); ``pool`` (a ``WorkerPool`` or None) learns
    when a slot's copy is done."""

    def __init__(self, device: torch.device | None, pool=None):
        self.device, self.pool = device, pool
        self.cuda = device is not None and device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        if self.cuda and pool is not None and pool.memory is not None:
            pool.memory.pin()

    def put(self, filled, audio: torch.Tensor, slot: int | None):
        """Start moving one filled batch (``audio``: its samples as a CPU tensor, over ``slot`` or not)."""
        if self.device is None or self.device.type == "cpu":
            return as_batch(filled, _to_float(audio))
        if not self.cuda:
            return as_batch(filled, _to_float(audio.to(self.device)))
        with torch.cuda.stream(self.stream):
            moved = audio.to(self.device, non_blocking=True)
            rest = to_device(filled.rest, self.device)
            event = torch.cuda.Event()
            event.record(self.stream)
        if slot is not None:
            self.pool.copying(slot, event)
        filled.rest = rest
        return filled, moved, event

    def get(self, ticket) -> tuple:
        """The batch ``put`` started, ready on the device for the current stream."""
        if not self.cuda:
            return ticket if self.device is None else to_device(ticket, self.device)
        filled, moved, event = ticket
        current = torch.cuda.current_stream(self.device)
        current.wait_event(event)
        moved.record_stream(current)  # its memory was allocated on the side stream: freed only after this one uses it
        for t in _tensors(filled.rest):
            t.record_stream(current)
        return as_batch(filled, _to_float(moved))


def _to_float(audio: torch.Tensor) -> torch.Tensor:
    """float32 samples: integers scaled by their step (exact), floats as they are."""
    scale = PCM_SCALE.get(str(audio.dtype).replace("torch.", ""))
    return audio if scale is None else torch.mul(audio, scale)


def _tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (tuple, list)):
        for o in x:
            yield from _tensors(o)
