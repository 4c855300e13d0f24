"""One rank of the real multi-process tests in ``tests/test_distributed.py``, started by ``torchrun`` (or alone, as
the single-process reference): trains on a small synthetic folder inside ``learn.distrib_ctx()`` and writes what
this rank saw to ``OUT/rank_<r>.json`` and its parameters to ``OUT/params_<r>.pt``.

    torchrun --standalone --nproc_per_node 2 tests/ddp_worker.py DATA OUT [--bs 4] [--variable] [--sgd] ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def build(
    data, bs: int, variable: bool, workers: int, shuffle: bool = True, val_bs: int | None = None, recipe: str = "plain"
):
    """The loaders and learner every rank (and the single-process reference) builds the same way. ``recipe='full'``:
    a DataFrame of files (``from_df``), the augmentations as batch transforms, and resnet18 with the spectrogram
    front-end inside the model (``audio_learner(front_end=...)``)."""
    import pandas as pd
    from fastai.metrics import F1Score, accuracy
    from fastai.optimizer import SGD
    from fastai.torch_core import set_seed
    from torch import nn
    from torchvision.models import resnet18

    from fastai_audio.all import AudioDataLoaders, AudioLearner, audio_aug_tfms, audio_learner, mel_transforms

    set_seed(0)  # Python's random too: SpecNormalize estimates its statistics from randomly drawn batches
    if recipe == "full":
        files = sorted(Path(data).glob("*/*.wav"))
        df = pd.DataFrame(
            {
                "fname": [f.relative_to(data) for f in files],
                "label": [f.parent.name for f in files],
                "is_valid": [i % 4 == 0 for i in range(len(files))],
            }
        )
        dls = AudioDataLoaders.from_df(
            df,
            data,
            "fname",
            "label",
            valid_col="is_valid",
            bs=bs,
            val_bs=val_bs,
            num_workers=workers,
            duration=1.0,
            device="cpu",
            batch_tfms=audio_aug_tfms(seed=0),
        )
        return audio_learner(
            dls,
            resnet18,
            pretrained=False,
            front_end=mel_transforms("speech", n_mels=32),
            metrics=[accuracy, F1Score()],
            path=Path(data).parent / "models",
        )
    dls = AudioDataLoaders.from_folder(
        data,
        valid_pct=0.25,
        seed=0,
        bs=bs,
        val_bs=val_bs,
        num_workers=workers,
        duration=None if variable else 1.0,
        device="cpu",
        batch_tfms=mel_transforms("speech", n_mels=32),
    )
    dls.train.shuffle = shuffle
    if variable is None:
        return dls
    # no batch norm, plain SGD: two ranks at bs b must take the steps of one process at bs 2b
    model = nn.Sequential(nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten(), nn.Linear(16, dls.c))
    # accuracy is an AvgMetric (a mean of batch means), F1Score an AccumMetric (computed on every prediction)
    return AudioLearner(dls, model, opt_func=SGD, metrics=[accuracy, F1Score()], path=Path(data).parent / "models")


def main(argv=None):
    import torch
    from fastai.callback.core import Callback
    from fastai.torch_core import rank_distrib

    from fastai_audio.distributed import batch_state

    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--bs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--variable", action="store_true")
    parser.add_argument("--no-shuffle", action="store_true")
    parser.add_argument("--val-bs", type=int, default=None)
    parser.add_argument("--recipe", default="plain", choices=("plain", "full"))
    parser.add_argument("--hang-rank", type=int, default=None, help="this rank stops itself (SIGSTOP) at its 2nd step")
    parser.add_argument("--timeout", type=float, default=None, help="distrib_ctx's timeout (s)")
    args = parser.parse_args(argv)

    learn = build(
        args.data,
        args.bs,
        args.variable,
        args.workers,
        shuffle=not args.no_shuffle,
        val_bs=args.val_bs,
        recipe=args.recipe,
    )
    seen = {"train": [], "valid": [], "len": [], "batches": [], "labels": [], "planned_labels": []}

    class Record(Callback):
        order = 12  # after the distributed trainer has wrapped the loaders

        def before_train(self):
            seen["len"].append(len(self.dl))
            seen["batches"].append(0)
            seen["labels"].append([])

        def after_batch(self):
            if self.training:
                seen["batches"][-1] += 1
                seen["labels"][-1] += self.yb[0].tolist()

        def before_validate(self):
            seen["valid"].append({"len": len(self.dl), "batches": 0})

    class Planned(Callback):
        order = 13

        def before_train(self):
            if "get_idxs" in self.dl.__dict__:
                return
            get = self.dl.get_idxs

            def recording():
                idxs = get()
                seen["train"].append(list(map(int, idxs)))
                seen["planned_labels"].append([int(self.dls.train_ds[i][1]) for i in idxs])
                return idxs

            self.dl.get_idxs = recording

        def after_batch(self):
            if not self.training:
                seen["valid"][-1]["batches"] += 1

    class Hang(Callback):  # a rank that stops answering, as a hung or SIGSTOPped process does
        def after_batch(self):
            if self.training and self.iter == 1 and rank_distrib() == args.hang_rank:
                import os
                import signal

                Path(args.out).mkdir(parents=True, exist_ok=True)
                (Path(args.out) / "hung.pid").write_text(str(os.getpid()))  # for the test to kill it afterwards
                os.kill(os.getpid(), signal.SIGSTOP)

    with learn.distrib_ctx(timeout=args.timeout):
        learn.fit(args.epochs, 0.05, cbs=[Record(), Planned(), Hang()])
        values = [list(map(float, v)) for v in learn.recorder.values]  # (get_preds starts a new record)
        preds = learn.get_preds()  # gathered from both ranks, in dataset order
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    rank = rank_distrib()
    torch.save({k: v.detach().clone() for k, v in learn.model.state_dict().items()}, out / f"params_{rank}.pt")
    torch.save(batch_state(learn.dls), out / f"batch_state_{rank}.pt")  # SpecNormalize's statistics
    torch.save(preds, out / f"preds_{rank}.pt")
    learn.export(out / "model.pkl")  # rank 0 only: fastai's export skips the others
    record = {"rank": rank, "n_train": len(learn.dls.train_ds), "values": values, **seen}
    (out / f"rank_{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
