"""fastai_audio.data.pool: forked workers collate into reused shared-memory slots, never overwriting a held batch."""

import pickle

import pytest
import torch
from conftest import assert_same_batches

from fastai_audio.data import AudioDataLoaders


def _in_pool(x: torch.Tensor, pool) -> bool:
    start = pool._data.data_ptr()
    return start <= x.data_ptr() < start + pool._data.numel() * pool._data.element_size()


def test_worker_batches_come_through_shared_slots_that_are_reused_only_once_freed(mixed_folder):
    dls = AudioDataLoaders.from_folder(mixed_folder, bs=2, duration=0.5, num_workers=2)
    dl = dls.valid  # centred crops: the same batches in the main process and in the workers
    want = list(dl.new(num_workers=0))
    batches = iter(dl)
    held = [next(batches)]
    pool = dl._pool
    assert pool is not None and pool.slots == 3
    held += list(batches)  # every batch kept: no slot may be reused, so batches past the slots collate the usual way
    assert dl._pool is None  # dropped at the end of the epoch; its memory lives on with the batches over it
    assert_same_batches(held, want)
    pooled = [_in_pool(x, pool) for x, _ in held]
    assert sum(pooled) == pool.in_use() == pool.workers * pool.slots < len(held)
    del held
    assert pool.in_use() == 0  # freed with the last tensor over each slot
    seen = []
    for x, y in dl:  # consumed one at a time: each worker's slots suffice, every batch is pooled
        pool = dl._pool or pool
        seen.append((_in_pool(x, pool), (x.clone(), y)))
    assert all(p for p, _ in seen)
    assert_same_batches([b for _, b in seen], want)
    del x, y  # the loop's last batch
    assert pool.in_use() == 0


def test_the_pool_is_never_pickled_and_skipped_where_it_cannot_help(mixed_folder, monkeypatch):
    dls = AudioDataLoaders.from_folder(mixed_folder, bs=4, duration=0.5, num_workers=2)
    batches = iter(dls.train)
    next(batches)
    assert dls.train._pool is not None
    back = pickle.loads(pickle.dumps(dls.train))  # mid-epoch, with the pool in use
    assert "_pool" not in back.__dict__ and len(list(back)) == len(dls.train)
    del batches
    assert dls.train.new(num_workers=0)._batch_pool() is None
    assert AudioDataLoaders.from_folder(mixed_folder, bs=4, duration=None, num_workers=2).train._batch_pool() is None
    monkeypatch.setattr("fastai_audio.data.pool.MAX_POOL_BYTES", 2 * 3 * 4 * 8000 * 4 - 1)  # one byte short
    assert dls.train._batch_pool() is None


@pytest.mark.parametrize("method,pooled", [("fork", True), ("spawn", False), ("forkserver", False)])
def test_the_pool_is_made_only_for_forked_workers(mixed_folder, monkeypatch, method, pooled):
    # spawned workers would get a copy of the loader without the parent's mapping: PyTorch's path is kept there
    monkeypatch.setattr("multiprocessing.get_start_method", lambda allow_none=False: method)
    dl = AudioDataLoaders.from_folder(mixed_folder, bs=4, duration=0.5, num_workers=2).train
    pool = dl._batch_pool()
    assert (pool is not None) == pooled
    if pooled:
        assert (pool.workers, pool.slots, pool.slot_shape, pool.dtype) == (2, 3, (4, 1, 8000), torch.float32)
