"""Data-parallel training (fastai_audio.distributed): real ``torchrun`` runs of 2 processes on the gloo backend, and
the sharding arithmetic in one process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from conftest import sine, write

pytest.importorskip("accelerate", reason="data-parallel training needs accelerate (the dev extra installs it)")

from fastai_audio.all import AudioDataLoaders  # noqa: E402
from fastai_audio.distributed import (  # noqa: E402
    AudioDistributedDL,
    AudioDistributedTrainer,
    load_batch_state,
    rank_positions,
)
from fastai_audio.errors import ParameterError  # noqa: E402

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory) -> Path:
    """22 clips of 0.6-0.9 s in two classes; valid_pct=0.25 leaves 17 for training (odd on purpose)."""
    root = tmp_path_factory.mktemp("ddp") / "data"
    for i in range(11):
        for label, freq in (("low", 220.0), ("high", 880.0)):
            write(root / label / f"{label}_{i}.wav", sine(freq * (1 + 0.05 * i), 16000, 0.6 + 0.1 * (i % 4)), 16000)
    return root


def launch(data: Path, out: Path, *args, procs: int = 2) -> list[dict]:
    """Run tests/ddp_worker.py under torchrun (``procs`` > 1) or alone; returns each rank's record."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    if procs > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
    else:
        cmd = [sys.executable]
        env = {k: v for k, v in env.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    run = subprocess.run(
        [*cmd, str(WORKER), str(data), str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=data.parent,
    )
    if run.returncode:
        (out.parent / "launch.log").write_text(run.stdout + run.stderr)
        lines = [ln for ln in (run.stdout + run.stderr).splitlines() if "Error" in ln or "terminate" in ln]
        log = out.parent / "launch.log"
        raise AssertionError(f"exit {run.returncode}; full log in {log}:\n" + "\n".join(lines[-30:]))
    return [json.loads((out / f"rank_{r}.json").read_text()) for r in range(procs)]


def params(out: Path, rank: int) -> dict:
    return torch.load(out / f"params_{rank}.pt")


# ---- the sharding arithmetic ------------------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("bs", [1, 3, 4])
def test_rank_positions_cover_every_item_once_and_give_equal_shares_in_training(world_size, bs):
    for n in range(1, 30):
        shares = [rank_positions(n, r, world_size, bs) for r in range(world_size)]
        padded = -(-n // world_size) * world_size
        assert sorted(p for s in shares for p in s) == list(range(padded))
        assert {len(s) for s in shares} == {padded // world_size}
        exact = [rank_positions(n, r, world_size, bs, exact=True) for r in range(world_size)]
        assert sorted(p for s in exact for p in s) == list(range(n))  # validation: no item twice
        assert max(map(len, exact)) - min(map(len, exact)) <= bs


def test_step_k_of_two_ranks_is_step_k_of_one_process_at_twice_the_batch_size():
    n, bs = 21, 3
    shares = [rank_positions(n, r, 2, bs) for r in range(2)]
    for k in range(n // (2 * bs)):
        combined = shares[0][k * bs : (k + 1) * bs] + shares[1][k * bs : (k + 1) * bs]
        assert combined == list(range(k * 2 * bs, (k + 1) * 2 * bs))


def test_rank_positions_refuse_a_rank_outside_the_world():
    with pytest.raises(ParameterError, match="0 <= rank < world_size"):
        rank_positions(10, 2, 2, 4)


@pytest.mark.parametrize("variable", [False, True])
def test_len_equals_the_batches_each_rank_yields(toy_folder, variable):
    """For a grid of data set sizes, batch sizes, world sizes, drop_last and both layouts: ``len(dl)`` is what the
    rank yields (fastai's DistributedDL overcounts with drop_last), and every rank yields the same number in
    training."""
    dls = AudioDataLoaders.from_folder(toy_folder, duration=None if variable else 1.0, bs=4)
    for base in (dls.train, dls.valid):  # 12 and 8 items
        for bs in (3, 5):
            for drop_last in (False, True):
                dl = base.new(bs=bs, drop_last=drop_last, shuffle=False)
                for world_size in (1, 2, 3):
                    for exact in (False, True) if not drop_last else (False,):
                        counts = []
                        for rank in range(world_size):
                            ddl = AudioDistributedDL(dl, rank=rank, world_size=world_size, exact=exact)
                            batches = list(ddl)
                            assert len(ddl) == len(batches), (len(dl.dataset), bs, drop_last, world_size, exact)
                            counts.append(len(batches))
                        if not exact:
                            assert len(set(counts)) == 1, counts


def test_the_wrapped_loader_forwards_its_attributes(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, duration=None, bs=4)
    ddl = AudioDistributedDL(dls.train, rank=0, world_size=2)
    assert ddl.variable_length is True and list(ddl.vocab) == list(dls.vocab) and ddl.lengths is dls.train.lengths


def test_sync_bn_off_cuda_warns_and_stays_off():
    if torch.cuda.is_available():
        pytest.skip("on a CUDA machine SyncBatchNorm works")
    with pytest.warns(UserWarning, match="sync_bn=True needs CUDA"):
        trainer = AudioDistributedTrainer(sync_bn=True)
    assert trainer.sync_bn is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert AudioDistributedTrainer().sync_bn is False  # the default: no warning


# ---- real 2-process runs ----------------------------------------------------------------------------------------


def single_process_validate(
    data: Path, state: dict, batch_state: list, bs: int, variable: bool, val_bs: int, recipe: str = "plain"
):
    sys.path.insert(0, str(WORKER.parent))
    from ddp_worker import build

    learn = build(data, bs, variable, 0, val_bs=val_bs, recipe=recipe)
    learn.model.load_state_dict(state)
    load_batch_state(learn.dls, batch_state)
    with learn.no_bar():
        return [float(v) for v in learn.validate()], learn.get_preds()


@pytest.mark.parametrize(
    "variable, recipe",
    [(False, "plain"), (True, "plain"), (False, "full")],
    ids=["fixed", "variable-length", "from_df-augment-front_end-resnet"],
)
def test_two_processes_train_one_model_on_every_item_with_exact_validation(ddp_data, tmp_path, variable, recipe):
    """torchrun, 2 ranks, gloo, 2 epochs: the ranks see every training item each epoch (a pad aside), yield
    ``len(dl)`` batches, hold identical parameters, rank 0 alone exports, and the validation metrics equal a
    single-process ``validate()`` of the same weights. The variable-length run also uses 2 loader workers, and
    validates one clip at a time: padded batches give each clip an output that depends on its batch-mates' lengths
    (in one process too), so only unpadded batches can be compared item for item; the ranks then yield 2 and 3
    validation batches, and the pass is still exact. The third run trains resnet18 (batch norm, per process off
    CUDA) with the front-end inside the model and the augmentations, from a DataFrame."""
    val_bs = 1 if variable else 4
    extra = ["--variable", "--workers", "2", "--val-bs", "1"] if variable else []
    extra += ["--recipe", recipe]
    ranks = launch(ddp_data, tmp_path, "--bs", "4", *extra)
    n = ranks[0]["n_train"]
    for epoch in range(2):
        planned = [r["train"][epoch] for r in ranks]
        assert len(planned[0]) == len(planned[1]) == -(-n // 2)
        assert set(planned[0]) | set(planned[1]) == set(range(n))
        for r in ranks:
            assert r["batches"][epoch] == r["len"][epoch] == len(planned[0]) // 4  # training drops the last batch
            assert r["labels"][epoch] == r["planned_labels"][epoch][: 4 * r["batches"][epoch]]
            assert r["valid"][epoch]["batches"] == r["valid"][epoch]["len"] >= 1
    torch.testing.assert_close(params(tmp_path, 0), params(tmp_path, 1), rtol=0, atol=0)
    assert (tmp_path / "model.pkl").is_file()
    assert ranks[0]["values"] == ranks[1]["values"]  # metrics gathered: the same on every rank
    _, valid_loss, accuracy, f1 = ranks[0]["values"][-1]
    # every rank normalised its spectrograms with rank 0's SpecNormalize statistics (estimated from random batches)
    states = [torch.load(tmp_path / f"batch_state_{r}.pt") for r in range(2)]
    assert states[0][0] and [d.keys() for d in states[0]] == [d.keys() for d in states[1]]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(*states) for k in a)
    (loss, acc, f1_alone), (preds, targs) = single_process_validate(
        ddp_data, params(tmp_path, 0), states[0], 4, variable, val_bs, recipe
    )
    assert acc == pytest.approx(accuracy, abs=1e-6) and f1_alone == pytest.approx(f1, abs=1e-6)
    assert loss == pytest.approx(valid_loss, rel=1e-5)
    for r in range(2):  # get_preds under DDP: every prediction once, in dataset order, on every rank
        ddp_preds, ddp_targs = torch.load(tmp_path / f"preds_{r}.pt")
        torch.testing.assert_close(ddp_preds, preds, rtol=1e-5, atol=1e-6)
        assert torch.equal(ddp_targs, targs)


def test_two_ranks_at_bs_b_take_the_steps_of_one_process_at_bs_2b(ddp_data, tmp_path):
    """No batch norm, plain SGD, no shuffling: DDP's averaged gradients of two half batches are the gradient of
    the whole batch, so the weights match one process trained at twice the batch size."""
    launch(ddp_data, tmp_path / "two", "--bs", "4", "--no-shuffle")
    launch(ddp_data, tmp_path / "one", "--bs", "8", "--no-shuffle", procs=1)
    two, one = params(tmp_path / "two", 0), params(tmp_path / "one", 0)
    sys.path.insert(0, str(WORKER.parent))
    from ddp_worker import build

    start = build(ddp_data, 8, False, 0).model.state_dict()
    assert not torch.allclose(one["2.weight"], start["2.weight"])  # it trained
    torch.testing.assert_close(two, one, rtol=1e-4, atol=1e-6)


def cli(*args, procs: int = 1, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"] if procs > 1 else []
    run = subprocess.run(
        [sys.executable, *launcher, "-m", "fastai_audio.cli", *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return run


def test_the_cli_trains_under_torchrun_resumes_and_its_model_predicts(ddp_data, tmp_path):
    """``torchrun -m fastai_audio.cli train``: one voice (rank 0 prints, checkpoints, exports), ``--resume`` picks
    up the last epoch on every rank, and ``predict`` reads the exported model."""
    model = tmp_path / "model.pkl"
    common = [
        "train",
        ddp_data,
        "--no-pretrained",
        "--bs",
        "4",
        "--duration",
        "1",
        "--valid-pct",
        "0.25",
        "--out",
        model,
    ]
    first = cli(*common, "--epochs", "1", procs=2, cwd=tmp_path)
    assert first.stdout.count("validation loss") == 1 and first.stderr.count("training on 2 processes") == 1
    assert model.is_file() and (tmp_path / "model_checkpoints" / "epoch_0.pth").is_file()
    second = cli(*common, "--epochs", "2", "--resume", procs=2, cwd=tmp_path)
    assert second.stderr.count("resuming after epoch 0") == 1
    assert (tmp_path / "model_checkpoints" / "epoch_1.pth").is_file()
    files = sorted(ddp_data.glob("*/*.wav"))[:3]
    table = cli("predict", model, *files, "--format", "csv", cwd=tmp_path).stdout.splitlines()
    assert len(table) == 4 and all(line.split(",")[1] in ("high", "low") for line in table[1:])


def test_the_cli_shards_a_folder_and_trains_on_the_shards_under_torchrun(ddp_data, tmp_path):
    pytest.importorskip("webdataset")
    shard = cli(
        "shard",
        ddp_data,
        tmp_path / "shards",
        "--shard-size",
        "30KB",
        "--valid-pct",
        "0.25",
        "--no-progress",
        cwd=tmp_path,
    )
    assert "train: 17 samples" in shard.stderr and "valid: 5 samples" in shard.stderr
    assert len(list((tmp_path / "shards").glob("train-*.tar"))) > 2
    model = tmp_path / "model.pkl"
    run = cli(
        "train",
        tmp_path / "shards",
        "--no-pretrained",
        "--bs",
        "4",
        "--duration",
        "1",
        "--epochs",
        "1",
        "--out",
        model,
        procs=2,
        cwd=tmp_path,
    )
    assert run.stdout.count("validation loss") == 1 and model.is_file()
    files = sorted(ddp_data.glob("*/*.wav"))[:2]
    table = cli("predict", model, *files, "--format", "csv", cwd=tmp_path).stdout.splitlines()
    assert len(table) == 3


def constructors(toy_folder, nsynth_small):
    import pandas as pd

    from fastai_audio.data import AudioItemList

    files = sorted(toy_folder.rglob("*.wav"))
    df = pd.DataFrame({"f": [f.relative_to(toy_folder) for f in files], "y": [f.parent.name for f in files]})
    yield "from_folder", AudioDataLoaders.from_folder(toy_folder, duration=1.0, bs=3)
    yield "from_df", AudioDataLoaders.from_df(df, toy_folder, "f", "y", duration=1.0, bs=3, seed=0)
    yield "from_re", AudioDataLoaders.from_re(toy_folder, r"/(high|low)_\d+\.wav$", duration=1.0, bs=3, seed=0)
    yield "from_nsynth", AudioDataLoaders.from_nsynth(nsynth_small, bs=8)
    chain = AudioItemList.from_folder(toy_folder).split_by_folder().label_from_folder()
    yield "AudioItemList", chain.databunch(bs=3)


def test_every_constructor_s_loaders_shard_over_ranks(toy_folder, nsynth_small):
    """What each rank of 3 iterates, for the loaders of every constructor: every training item in one rank's share
    (a pad aside), every validation item exactly once, batches of the ranks' share."""
    for name, dls in constructors(toy_folder, nsynth_small):
        for dl, exact in ((dls.train, False), (dls.valid, True)):
            shares = [AudioDistributedDL(dl.new(shuffle=False), rank=r, world_size=3, exact=exact) for r in range(3)]
            idxs = [s.get_idxs() for s in shares]
            n = len(dl.dataset)
            assert set().union(*map(set, idxs)) == set(range(n)), name
            if exact:
                assert sorted(i for share in idxs for i in share) == list(range(n)), name
            batch = next(iter(shares[0]))
            assert len(batch[1]) == min(dl.bs, len(idxs[0])), name


def test_a_rank_that_stops_answering_is_named_within_the_timeout(ddp_data, tmp_path):
    """Rank 1 stops itself (SIGSTOP) at its second step: rank 0 gives up after the 4 s timeout, instead of torch's 30
    minutes, and names rank 1."""
    import signal

    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(WORKER),
        str(ddp_data),
        str(tmp_path / "out"),
        "--hang-rank",
        "1",
        "--timeout",
        "4",
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ddp_data.parent,
        start_new_session=True,
    )
    start, lines = time.perf_counter(), []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "DistributedTimeoutError" in line and "stopped answering" in line:
                break
            assert time.perf_counter() - start < 120, "".join(lines[-30:])
    finally:
        hung = tmp_path / "out" / "hung.pid"
        if hung.is_file():  # a stopped process does not die with its launcher: kill it by its pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(hung.read_text()), signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    message = next((ln for ln in lines if "DistributedTimeoutError" in ln), "".join(lines[-30:]))
    assert "rank 0: a collective operation of data-parallel training waited more than 4 s" in message, message
    assert "rank 1 stopped answering" in message


@pytest.mark.parametrize("workers", [0, 2])
def test_a_ranks_share_is_filled_whole_as_the_item_path_makes_it(toy_folder, monkeypatch, workers):
    """Under DDP each rank's loader fills whole batches (the worker pool, the slots, the copies to the device) on its
    share of the epoch: the validation batches equal fastai's item-by-item ones, and every item is seen once."""
    import fastai_audio.distributed as distributed

    dls = AudioDataLoaders.from_folder(toy_folder, bs=3, duration=1.0, num_workers=workers)
    ranks = [AudioDistributedDL(dls.valid, rank=r, world_size=2, exact=True) for r in range(2)]
    whole = [list(ddl) for ddl in ranks]
    monkeypatch.setattr(distributed, "filler_for", lambda *a: None)  # fastai's iteration, item by item
    items = [list(ddl) for ddl in ranks]
    for got, want in zip(whole, items):
        assert len(got) == len(want) > 0
        for (x, y), (x0, y0) in zip(got, want):
            torch.testing.assert_close(x, x0, rtol=0, atol=0)
            assert torch.equal(y, y0)
    assert sum(len(y) for r in whole for _, y in r) == len(dls.valid_ds)
    dls.valid.close()
