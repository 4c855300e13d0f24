"""The ``fastai-audio`` command: thin over the library, no logic of its own.

    fastai-audio train DATA --arch resnet18 --epochs N --out model.pkl [--resume] [...]
    torchrun --nproc_per_node N -m fastai_audio.cli train DATA ...     (data-parallel: one process per GPU)
    fastai-audio predict MODEL FILE [FILE ...] [--window S --hop S] [--format table|csv|json]
    fastai-audio export MODEL --onnx model.onnx
    fastai-audio serve model.onnx [--host 127.0.0.1] [--port 8000] [--max-batch 16] [--max-wait-ms 5] [--docs]
    fastai-audio check PATH [PATH ...] [--all] [--format table|csv|json]
    fastai-audio shard DATA DEST [--shard-size 500MB] [--format flac|original]
    fastai-audio pack DATA DEST [--sample-rate 16000] [--no-mono]        (train DEST reads it)
    fastai-audio synth-nsynth DEST [--size small|medium|full] [--soundfont PATH...] [--timbre-randomization S]

Exit status: 0 on success, 1 when a checked file is bad or a command fails, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from . import __version__
from .errors import AudioError, AudioFileError, ParameterError

__all__ = ["main"]


def _files_under(paths) -> list[Path]:
    from .files import get_audio_files

    files = []
    for p in map(Path, paths):
        files += [p] if p.is_file() or not p.exists() else list(get_audio_files(p))
    return files


def _print_table(table, fmt: str):
    """A result table on stdout as ``--format`` asks: ``csv``, ``json`` (records), or an aligned ``table``."""
    if fmt == "csv":
        print(table.to_csv(index=False), end="")
    elif fmt == "json":
        print(table.to_json(orient="records", indent=2))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def _check(args) -> int:
    from .files import check_audio_files

    files = _files_under(args.paths)
    if not files:
        print(f"no audio files found under {', '.join(args.paths)}", file=sys.stderr)
        return 1
    report = check_audio_files(files, progress=args.progress)
    bad = report[~report.ok]
    shown = report if args.all else bad
    if args.format == "csv":
        print(shown.to_csv(index=False), end="")
    elif args.format == "json":
        print(shown.to_json(orient="records", indent=2))
    elif len(shown):
        cols = ["path", "ok", "sample_rate", "channels", "duration", "reason"] if args.all else ["path", "reason"]
        print(shown[cols].to_string(index=False, max_colwidth=200))
    print(f"{len(report)} file(s) checked, {len(bad)} bad", file=sys.stderr)
    return 1 if len(bad) else 0


def _synth_nsynth(args) -> int:
    from .datasets import synth_nsynth

    fonts = args.soundfont[0] if args.soundfont and len(args.soundfont) == 1 else args.soundfont
    root = synth_nsynth(
        args.dest,
        size=args.size,
        soundfont=fonts,
        sample_rate=args.sample_rate,
        seed=args.seed,
        timbre_randomization=args.timbre_randomization,
        progress=not args.no_progress,
    )
    print(root)
    return 0


def _source_dls(args, **common):
    """The loaders of DATA as `train`, `shard` and `pack` read it: a CSV, an NSynth root, a folder, or (train only)
    shards or a packed cache."""
    from .data import AudioDataLoaders
    from .packed import INDEX_NAME as PACKED_INDEX

    data = Path(args.data)
    packed = data / PACKED_INDEX if data.is_dir() else data
    if packed.name == PACKED_INDEX and packed.is_file():
        for key in ("seed", "sample_rate", "mono"):
            common.pop(key, None)
        return AudioDataLoaders.from_packed(packed, **common)
    index = data / "index.json" if data.is_dir() else data
    if index.suffix == ".json" and index.is_file() and index.name != "examples.json":
        from .data.shards import read_shard_index

        info = read_shard_index(index)
        base = index.parent
        common.pop("seed", None)
        return AudioDataLoaders.from_shards(
            [str(base / s["name"]) for s in info["splits"]["train"]["shards"]],
            [str(base / s["name"]) for s in info["splits"]["valid"]["shards"]],
            index=str(index),
            seed=args.seed,
            **common,
        )
    if data.is_file() and data.suffix.lower() == ".csv":
        import pandas as pd

        common.pop("seed", None)
        return AudioDataLoaders.from_df(
            pd.read_csv(data), data.parent, args.fn_col, args.label_col, valid_pct=args.valid_pct or 0.2, **common
        )
    if any(
        (data / split / "examples.json").is_file() or (data / f"nsynth-{split}" / "examples.json").is_file()
        for split in ("train", "valid")
    ):
        common.pop("seed", None)
        return AudioDataLoaders.from_nsynth(data, **common)
    return AudioDataLoaders.from_folder(data, valid_pct=args.valid_pct, **common)


MUSICNN_ARCHS = ("musicnn", "vgg")


def _train_dls(args):
    from .models import PANNS_ARCHS
    from .transforms import audio_aug_tfms, mel_transforms

    arch = args.arch.lower()
    if args.duration is None:
        args.duration = 2.98 if arch == "vgg" else 4.0  # (MusicVGG takes patches of exactly 187 frames)
    if arch in PANNS_ARCHS or arch in MUSICNN_ARCHS:  # the log-mel the checkpoints expect
        tfms = mel_transforms("panns" if arch in PANNS_ARCHS else "musicnn")
        args.sample_rate = tfms[0].sample_rate
    else:
        tfms = mel_transforms("nsynth", sample_rate=args.sample_rate, n_mels=args.n_mels, f_max=args.sample_rate / 2)
    if args.augment:
        tfms += audio_aug_tfms()
    extra = {"on_error": args.on_error} if args.on_error != "raise" else {}
    return _source_dls(
        args,
        bs=args.bs,
        num_workers=args.num_workers,
        sample_rate=args.sample_rate,
        duration=args.duration,
        batch_tfms=tfms,
        seed=args.seed,
        **extra,
    )


def _shard(args) -> int:
    from .data.shards import write_shards

    dls = _source_dls(args, bs=1, sample_rate=None, duration=None, mono=False, seed=args.seed)
    index = write_shards(
        dls, args.dest, shard_size=args.shard_size, format=args.format, seed=args.seed, progress=not args.no_progress
    )
    from .data.shards import read_shard_index

    info = read_shard_index(index)
    for split, entry in info["splits"].items():
        print(
            f"{split}: {entry['n']} samples in {len(entry['shards'])} shard(s), {entry['duration']:.1f} s of audio",
            file=sys.stderr,
        )
    print(index)
    return 0


def _pack(args) -> int:
    from .data.pack import pack

    dls = _source_dls(args, bs=1, sample_rate=args.sample_rate, duration=None, mono=args.mono, seed=args.seed)
    index = pack(dls, args.dest, progress=not args.no_progress)
    import json

    info = json.loads(index.read_text())
    for split, entry in info["splits"].items():
        seconds = entry["frames"] / info["audio_config"]["sample_rate"]
        print(f"{split}: {len(entry['clips'])} clips, {seconds:.1f} s of {info['dtype']} audio", file=sys.stderr)
    print(index)
    return 0


def _checkpoints(folder: Path) -> list[int]:
    """The epochs of the checkpoints ``epoch_N.pth`` in ``folder``, newest first."""
    epochs = [int(p.stem.split("_")[-1]) for p in folder.glob("epoch_*.pth") if p.stem.split("_")[-1].isdigit()]
    return sorted(epochs, reverse=True)


def _resume(learn, folder: Path, say) -> int:
    """Load the newest checkpoint of ``folder`` that loads (weights only: a checkpoint runs no code), saying which
    and why any newer one was passed over; the epoch to start from (0 when none loads)."""
    for epoch in _checkpoints(folder):
        path = folder / f"epoch_{epoch}.pth"
        try:
            learn.load(f"epoch_{epoch}", with_opt=True)
        except Exception as err:  # noqa: BLE001 - torch and pickle raise many types for a broken file
            say(
                f"cannot resume from {path} ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
                "); trying the checkpoint before it"
            )
            continue
        say(f"resuming after epoch {epoch} from {path}")
        return epoch + 1
    say(f"no checkpoint in {folder} loads: starting from epoch 0")
    return 0


def _train(args) -> int:
    import torch
    from fastai.callback.tracker import EarlyStoppingCallback
    from fastai.metrics import accuracy
    from fastai.torch_core import num_distrib, rank_distrib, set_seed
    from torchvision import models

    from .learner import EpochCheckpoint, KeepBest, audio_learner
    from .models import PANNS_ARCHS

    rank, world = rank_distrib(), max(num_distrib(), 1)

    def say(message: str, file=sys.stderr):  # one voice under torchrun: rank 0's
        if rank == 0:
            print(message, file=file)

    named = (*PANNS_ARCHS, *MUSICNN_ARCHS)
    arch = args.arch.lower() if args.arch.lower() in named else getattr(models, args.arch, None)
    if arch is None or not (callable(arch) or isinstance(arch, str)):
        say(
            f"fastai-audio train: error: unknown --arch {args.arch!r}; use a torchvision model name such as "
            f"resnet18, resnet34 or resnet50, a PANNs network ({', '.join(sorted(PANNS_ARCHS))}) or musicnn / vgg"
        )
        return 2
    out = Path(args.out)
    checkpoints = (
        Path(args.checkpoints) if args.checkpoints else out.with_suffix("").with_name(out.stem + "_checkpoints")
    )
    checkpoints.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed)  # the same loaders and initial weights in every process
    dls = _train_dls(args)
    learn = audio_learner(
        dls, arch, pretrained=args.pretrained, weights=args.weights, metrics=accuracy, path=checkpoints, model_dir="."
    )
    if world > 1:
        set_seed(args.seed + rank)  # but each rank its own augmentations
        say(
            f"training on {world} processes (rank 0 prints, checkpoints and exports); batch size {args.bs} per "
            f"process, {args.bs * world} per step"
        )
    start = 0
    if args.resume:
        start = _resume(learn, checkpoints, say)
    # under torchrun / accelerate launch: DDP through fastai's engine (and accelerate, needed then only)
    with learn.distrib_ctx(timeout=args.dist_timeout) if world > 1 else contextlib.nullcontext():
        if start < args.epochs:
            if args.unfreeze:
                learn.unfreeze()
            cbs = [EpochCheckpoint(start, fname="epoch")]
            keep = KeepBest("accuracy", fname="best") if args.keep_best else None
            cbs += [keep] if keep else []
            if args.patience:
                cbs.append(EarlyStoppingCallback(monitor="accuracy", patience=args.patience))
            try:
                learn.fit_one_cycle(args.epochs, args.lr, cbs=cbs, start_epoch=start)
            except KeyboardInterrupt:
                say(f"\ninterrupted; finished epochs are saved in {checkpoints}: rerun with --resume to continue")
                return 130
            if keep is not None and keep.best_epoch is not None:
                say(f"kept epoch {keep.best_epoch}, the best on validation {keep.monitor} ({keep.best:.4f})")
        else:
            say(f"all {args.epochs} epochs are done already (checkpoints in {checkpoints})")
        loss, *metrics = learn.validate()  # under DDP: each rank a share, the result gathered exactly
    say(
        f"validation loss {loss:.4f}, accuracy {metrics[0]:.4f}" if metrics else f"validation loss {loss:.4f}",
        file=sys.stdout,
    )
    learn.export(out.absolute())  # fastai's export writes on rank 0 only
    say(f"exported {out}", file=sys.stdout)
    if world > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()  # the other ranks leave once the model is written
        torch.distributed.destroy_process_group()
    return 0


def _load_model(model: Path):
    """The learner exported to ``model`` (a ``.pkl``). A ``.pkl`` is a pickle: loading it runs whatever code it holds,
    so fastai's warning saying so is left to show; load only models you made or trust (an ``.onnx`` runs nothing)."""
    from fastai.learner import load_learner

    if not model.is_file():
        raise AudioFileError(
            model, "no such model file; pass the .pkl written by `fastai-audio train` or learn.export()"
        )
    if model.suffix.lower() == ".onnx":
        raise AudioFileError(
            model,
            "is an ONNX model: `fastai-audio predict` and `serve` take it; this command "
            "needs the .pkl it was exported from",
        )
    try:
        return load_learner(model)
    except Exception as err:  # pickle raises many types for a file that is not a model
        raise AudioFileError(model, f"cannot be loaded as a fastai model ({type(err).__name__}: {err})") from None


def _predict_onnx(model: Path, files: list, window, hop):
    """``predict`` with an ``.onnx`` model: ONNX Runtime, nothing in the file executes."""
    import pandas as pd

    from .inference import WindowPredictions
    from .runtime import OnnxClassifier

    clf = OnnxClassifier(model)
    if window is None:
        return clf.predict_files(files)
    tables = []
    for f in files:
        res = clf.predict_windows(f, window=window, hop=hop)
        windows = WindowPredictions(
            res["starts"],
            res["window"],
            res["duration"],
            res["probs"],
            res["clip_probs"],
            list(clf.labels),
            res["label"],
        )
        tables.append(windows.to_df().assign(path=str(f), clip_prediction=res["label"]))
    return pd.concat(tables, ignore_index=True)


def _predict(args) -> int:
    from .inference import predict_files, predict_windows

    files = [Path(f) for f in args.files]
    model = Path(args.model)
    if model.suffix.lower() == ".onnx" and model.is_file():
        table = _predict_onnx(model, files, args.window, args.hop)
    else:
        learn = _load_model(model)
        with learn.no_bar():
            if args.window is None:
                table = predict_files(learn, files)
            else:
                import pandas as pd

                tables = []
                for f in files:
                    res = predict_windows(learn, f, window=args.window, hop=args.hop)
                    tables.append(res.to_df().assign(path=str(f), clip_prediction=res.label))
                table = pd.concat(tables, ignore_index=True)
    if args.window is not None:
        first = ["path", "start", "end", "prediction", "clip_prediction"]
        table = table[first + [c for c in table.columns if c not in first]]
    _print_table(table, args.format)
    return 0


def _tag(args) -> int:
    """``tag``: the top tags of each file (its windows' mean), and the taggrams on request."""
    import pandas as pd

    from .inference import MusicTagger, plot_taggram

    if args.top < 1:
        raise ParameterError(f"--top must be a positive number of tags, got {args.top}")
    tagger = MusicTagger(args.weights)
    rows = []
    for f in [Path(f) for f in args.files]:
        res = tagger.predict_windows(f, hop=args.hop)
        order = res.clip_probs.argsort()[::-1][: args.top]
        rows += [
            {"path": str(f), "rank": r + 1, "tag": res.classes[i], "probability": float(res.clip_probs[i])}
            for r, i in enumerate(order)
        ]
        if args.taggram is not None:
            import matplotlib.pyplot as plt

            from .atomic import atomic_file

            folder = Path(args.taggram)
            folder.mkdir(parents=True, exist_ok=True)
            ax = plot_taggram(res, top=max(args.top, 10), figsize=(10, 4))
            ax.set_title(f"{f.name}: {res.label} ({args.weights} tags, {len(res.starts)} windows of 3 s)")
            with atomic_file(folder / f"{f.stem}.png", "taggram") as tmp:
                ax.figure.savefig(tmp, format="png", bbox_inches="tight")
            plt.close(ax.figure)
    table = pd.DataFrame(rows)
    _print_table(table, args.format)
    return 0


def _embed(args) -> int:
    """``embed``: a table with ``path`` (``start``, ``end`` per window) and the columns ``e0``, ``e1``..."""
    import numpy as np
    import pandas as pd
    import torch

    from .atomic import atomic_file
    from .inference import embed_windows

    out = Path(args.out)
    kind = out.suffix.lower()
    if kind not in (".parquet", ".csv", ".npz"):
        raise ParameterError(f"--out must end in .parquet, .csv or .npz, got {out.name!r}")
    if kind == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as err:
            raise ImportError(
                "writing .parquet needs pyarrow: pip install pyarrow, or use --out ....csv / .npz"
            ) from err
    model = Path(args.model)
    if model.suffix.lower() == ".onnx":
        raise ParameterError("an .onnx export outputs probabilities only: embed with the .pkl the model came from")
    files = [Path(f) for f in args.files]
    learn = _load_model(model)
    with learn.no_bar():
        if args.window is None:
            meta, features = pd.DataFrame({"path": [str(f) for f in files]}), learn.embed(files)
        else:
            parts, blocks = [], []
            for f in files:
                starts, feats = embed_windows(learn, f, window=args.window, hop=args.hop)
                parts.append(pd.DataFrame({"path": str(f), "start": starts, "end": starts + args.window}))
                blocks.append(feats)
            meta, features = pd.concat(parts, ignore_index=True), torch.cat(blocks)
    values = features.numpy()
    with atomic_file(out, "embeddings") as tmp:
        if kind == ".npz":
            with open(tmp, "wb") as fh:
                numeric = pd.api.types.is_numeric_dtype
                columns = {c: meta[c].to_numpy(dtype=None if numeric(meta[c]) else str) for c in meta.columns}
                np.savez(fh, embeddings=values, **columns)  # strings as unicode arrays: no pickle needed to load
        else:
            table = pd.concat([meta, pd.DataFrame(values, columns=[f"e{i}" for i in range(values.shape[1])])], axis=1)
            table.to_parquet(tmp, index=False) if kind == ".parquet" else table.to_csv(tmp, index=False)
    print(f"{out}: {values.shape[0]} embeddings of {values.shape[1]} values")
    return 0


def _export(args) -> int:
    from .export import export_onnx

    learn = _load_model(Path(args.model))
    print(export_onnx(learn, args.onnx, opset=args.opset))
    return 0


def _serve(args) -> int:
    from .server import serve

    serve(
        args.model,
        host=args.host,
        port=args.port,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_bytes=int(args.max_mb * 2**20),
        max_seconds=args.max_seconds,
        max_connections=args.max_connections,
        header_timeout=args.header_timeout,
        read_timeout=args.read_timeout,
        docs=args.docs,
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastai-audio", description="Audio classification the fastai way.")
    parser.add_argument("--version", action="version", version=f"fastai_audio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a spectrogram CNN on a folder, an NSynth set or a CSV")
    train.add_argument(
        "data",
        help="folder (train/ and valid/ sub-folders, labels from parent folders; or "
        "--valid-pct), NSynth root, a CSV of file,label, shards (their index.json or folder), or "
        "a packed cache (its folder)",
    )
    train.add_argument(
        "--arch",
        default="resnet18",
        help="torchvision model name (resnet18, resnet34, resnet50...), a PANNs network (cnn6, cnn10, cnn14, "
        "mobilenetv1: 32 kHz, the 'panns' log-mel) or musicnn / vgg (the musicnn package's networks: 16 kHz, the "
        "'musicnn' log-mel; vgg on 2.98 s clips)",
    )
    train.add_argument(
        "--weights",
        default=None,
        help="a checkpoint to start from (PANNs: the published .pth; musicnn / vgg: MTT (the default) or MSD)",
    )
    train.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the default augmentation recipe, audio_aug_tfms()",
    )
    train.add_argument(
        "--keep-best",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="export the epoch with the best validation accuracy, not the last one",
    )
    train.add_argument(
        "--patience", type=int, default=None, help="stop after this many epochs without a better validation accuracy"
    )
    train.add_argument("--epochs", type=int, default=5)
    train.add_argument("--out", default="model.pkl", help="exported model")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue after the last finished epoch's checkpoint (the newest that loads)",
    )
    train.add_argument(
        "--dist-timeout",
        type=float,
        default=300.0,
        help="under torchrun: seconds a rank waits for the others before training stops, naming the "
        "rank that stopped answering",
    )
    train.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="a file that cannot be decoded, before or during training: stop naming it, or skip it "
        "(named once) and go on",
    )
    train.add_argument("--checkpoints", default=None, help="checkpoint folder (default: <out>_checkpoints)")
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--bs", type=int, default=32)
    train.add_argument("--duration", type=float, default=None, help="seconds per clip (default 4; vgg: 2.98)")
    train.add_argument("--sample-rate", type=int, default=16000)
    train.add_argument("--n-mels", type=int, default=64)
    train.add_argument("--valid-pct", type=float, default=None, help="random validation split instead of folders")
    train.add_argument("--fn-col", default="fname", help="CSV column holding file names (relative to the CSV)")
    train.add_argument("--label-col", default="label", help="CSV column holding labels")
    train.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start from ImageNet weights in the torch hub cache",
    )
    train.add_argument("--unfreeze", action="store_true", help="train the whole pretrained network from the start")
    train.add_argument("--num-workers", type=int, default=0)
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(func=_train)

    predict = sub.add_parser("predict", help="predict audio files with an exported model")
    predict.add_argument(
        "model",
        help="an .onnx from `fastai-audio export` (nothing in it executes), or the .pkl "
        "written by `fastai-audio train` or learn.export(): a .pkl is Python code that runs when it "
        "is loaded, so load only your own",
    )
    predict.add_argument("files", nargs="+", help="audio files")
    predict.add_argument("--window", type=float, default=None, help="slide windows of this many seconds")
    predict.add_argument("--hop", type=float, default=None, help="seconds between windows (default: window / 2)")
    predict.add_argument("--format", choices=("table", "csv", "json"), default="table")
    predict.set_defaults(func=_predict)

    tag = sub.add_parser(
        "tag",
        help="tag music with a pretrained MusiCNN (the musicnn package's weights: pip install --no-deps musicnn)",
    )
    tag.add_argument("files", nargs="+", help="audio files")
    tag.add_argument("--weights", choices=("MTT", "MSD"), default="MTT", help="MagnaTagATune or Million Song tags")
    tag.add_argument("--hop", type=float, default=None, help="seconds between 3 s windows (default 3)")
    tag.add_argument("--top", type=int, default=5, help="tags per file in the table")
    tag.add_argument("--taggram", default=None, help="a folder: write <file stem>.png, the taggram of each file")
    tag.add_argument("--format", choices=("table", "csv", "json"), default="table")
    tag.set_defaults(func=_tag)

    embed = sub.add_parser("embed", help="write one embedding per file (or per window) of a trained model")
    embed.add_argument(
        "model",
        help="the .pkl written by `fastai-audio train` or learn.export() (a .pkl is Python code that runs when it "
        "is loaded: load only your own)",
    )
    embed.add_argument("files", nargs="+", help="audio files")
    embed.add_argument("--out", required=True, help="the table to write: .parquet (needs pyarrow), .csv or .npz")
    embed.add_argument("--window", type=float, default=None, help="one embedding per window of this many seconds")
    embed.add_argument("--hop", type=float, default=None, help="seconds between windows (default: window / 2)")
    embed.set_defaults(func=_embed)

    export = sub.add_parser("export", help="write an exported model as one ONNX graph (raw audio in, labels out)")
    export.add_argument(
        "model",
        help="the .pkl written by `fastai-audio train` or learn.export() (a .pkl is Python "
        "code that runs when it is loaded: load only your own)",
    )
    export.add_argument("--onnx", required=True, help="the .onnx file to write")
    export.add_argument("--opset", type=int, default=18)
    export.set_defaults(func=_export)

    serve = sub.add_parser("serve", help="serve an .onnx model over HTTP (FastAPI on uvicorn, micro-batching)")
    serve.add_argument("model", help="the .onnx written by `fastai-audio export` or learn.export_onnx()")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-batch", type=int, default=16, help="requests run together at most (1: no batching)")
    serve.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits for more requests")
    serve.add_argument("--max-mb", type=float, default=50.0, help="largest request body (MB)")
    serve.add_argument("--max-seconds", type=float, default=600.0, help="longest recording accepted (s)")
    serve.add_argument("--max-connections", type=int, default=512, help="connections at once (503 beyond)")
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a connection may take to send its request headers before it is closed",
    )
    serve.add_argument("--read-timeout", type=float, default=30.0, help="seconds a request body may take (408)")
    serve.add_argument("--docs", action="store_true", help="serve /docs and /openapi.json (off by default)")
    serve.set_defaults(func=_serve)

    check = sub.add_parser("check", help="decode every audio file and report the bad ones")
    check.add_argument("paths", nargs="+", help="audio files or folders (searched recursively)")
    check.add_argument("--all", action="store_true", help="list every file, not only the bad ones")
    check.add_argument("--format", choices=("table", "csv", "json"), default="table")
    check.add_argument("--progress", action="store_true", help="show a progress bar")
    check.set_defaults(func=_check)

    shard = _writer(
        sub,
        "shard",
        "write a data set as WebDataset tar shards (and an index.json)",
        "train-*.tar, valid-*.tar and index.json",
        "the split and of the training samples' order",
    )
    shard.add_argument("--shard-size", default="500MB", help="bytes per shard, e.g. 500MB, 2GB")
    shard.add_argument(
        "--format",
        choices=("flac", "original"),
        default="flac",
        help="flac: lossless re-encoding of integer PCM; original: the files' own bytes",
    )
    shard.set_defaults(func=_shard)

    pack = _writer(
        sub,
        "pack",
        "decode a data set once into a packed cache (one memory-mapped file per split)",
        "train.bin, valid.bin and packed.json",
        "the split",
    )
    pack.add_argument("--sample-rate", type=int, default=16000, help="the rate the clips are stored at")
    pack.add_argument("--mono", action=argparse.BooleanOptionalAction, default=True, help="downmix to one channel")
    pack.set_defaults(func=_pack)

    synth = sub.add_parser("synth-nsynth", help="render an NSynth-format data set from a General MIDI soundfont")
    synth.add_argument("dest", help="folder to create (train/, valid/, test/ with examples.json each)")
    synth.add_argument(
        "--size",
        type=lambda s: int(s) if s.isdigit() else s,
        default="small",
        help="small, medium, full, or notes per GM program (an int)",
    )
    synth.add_argument(
        "--soundfont",
        nargs="+",
        default=None,
        help=".sf2/.sf3 file(s) (default: pretty_midi's TimGM6mb.sf2); several render into one set",
    )
    synth.add_argument(
        "--timbre-randomization",
        type=float,
        default=0.0,
        help="vary each note like real instruments and rooms, strength 0-1 (default 0: off)",
    )
    synth.add_argument("--sample-rate", type=int, default=16000)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--no-progress", action="store_true")
    synth.set_defaults(func=_synth_nsynth)
    return parser


def _writer(sub, name: str, help: str, dest: str, seed: str):
    """A sub-command that writes a data set somewhere (`shard`, `pack`): DATA as `train` reads it, and DEST."""
    parser = sub.add_parser(name, help=help)
    parser.add_argument("data", help="what `train` reads: a folder, an NSynth root, or a CSV of file,label")
    parser.add_argument("dest", help=f"new folder for {dest}")
    parser.add_argument("--valid-pct", type=float, default=None, help="random validation split instead of folders")
    parser.add_argument("--fn-col", default="fname", help="CSV column holding file names (relative to the CSV)")
    parser.add_argument("--label-col", default="label", help="CSV column holding labels")
    parser.add_argument("--seed", type=int, default=0, help=f"seed of {seed}")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 usage error).

    Examples:
        >>> main(["check", "data/"])
        0
    """
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (AudioError, ImportError) as err:
        print(f"fastai-audio {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
