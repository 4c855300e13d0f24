"""The main job, end to end on this machine: `make demo`.

Renders a small NSynth-format data set from the General MIDI soundfont that pretty_midi ships (no download),
loads it with AudioDataLoaders.from_nsynth, prints a summary, writes show_batch pictures of the waveforms and of the
log-mel spectrograms the batch transforms compute, trains a 1-channel resnet18 on the fly (ImageNet weights when
they are in the torch hub cache, else from scratch), prints validation accuracy, writes the confusion matrix and the
top losses, exports the model and predicts a held-out note.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from fastai.metrics import accuracy  # noqa: E402
from fastai.torch_core import set_seed  # noqa: E402
from torchvision.models import resnet18  # noqa: E402

from fastai_audio.data import AudioDataLoaders  # noqa: E402
from fastai_audio.datasets import read_nsynth, synth_nsynth  # noqa: E402
from fastai_audio.interpret import AudioInterpretation  # noqa: E402
from fastai_audio.learner import KeepBest, audio_learner, hub_weights_cached  # noqa: E402
from fastai_audio.transforms import audio_aug_tfms, mel_transforms  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "demo_out", help="where the pictures go")
    parser.add_argument("--data", type=Path, default=ROOT / ".cache" / "nsynth_small", help="data set folder")
    parser.add_argument("--size", default="small", choices=("small", "medium", "full"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="use resnet18's ImageNet weights when they are in the torch hub cache",
    )
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # the learner exports relative to its own path: give it an absolute one
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    root = synth_nsynth(args.data, size=args.size, progress=True)
    print(f"data set: {root} ({time.perf_counter() - start:.1f} s, cached for the next run)\n")

    df = read_nsynth(root)
    print("notes per family and split:")
    print(
        df.pivot_table(
            index="instrument_family_str",
            columns="split",
            values="note_str",
            aggfunc="count",
            fill_value=0,
            margins=True,
            margins_name="total",
        ).to_string()
    )
    print("\ninstruments per split:", df.groupby("split").instrument_str.nunique().to_dict())
    print("instrument sources:", df.instrument_source_str.value_counts().to_dict())

    dls = AudioDataLoaders.from_nsynth(root, bs=16, sample_rate=16000, duration=4.0, num_workers=0)
    x, y = dls.one_batch()
    print(f"\n{dls.c} classes: {', '.join(dls.classes)}")
    print(f"train/valid clips: {len(dls.train_ds)}/{len(dls.valid_ds)}")
    print(f"one batch: {type(x).__name__} {tuple(x.shape)} {x.dtype} at {x.sample_rate} Hz, labels {tuple(y.shape)}")

    dls.show_batch(max_n=9)
    picture = args.out / "show_batch_waveforms.png"
    plt.savefig(picture, dpi=80)
    plt.close("all")
    print(f"\nwrote {picture}")

    # The same clips as log-mel spectrograms, computed per batch by the front-end's batch transforms.
    set_seed(0, reproducible=True)  # crops, shuffling and initial weights: the same run every time
    start = time.perf_counter()
    dls = AudioDataLoaders.from_nsynth(
        root, bs=16, num_workers=0, batch_tfms=[*mel_transforms("nsynth"), *audio_aug_tfms()]
    )
    x, _ = dls.one_batch()
    setup_s = time.perf_counter() - start
    print(
        f"\nwith batch_tfms=[*mel_transforms('nsynth'), *audio_aug_tfms()]: {type(x).__name__} {tuple(x.shape)} "
        f"({x.scale} scale, {x.f_min:g}-{x.f_max:g} Hz, hop {x.hop_length}; set-up {setup_s:.1f} s)"
    )
    dls.show_batch(max_n=9)
    picture = args.out / "show_batch_spectrograms.png"
    plt.savefig(picture, dpi=80)
    plt.close("all")
    print(f"wrote {picture}")

    # Train a 1-channel resnet18 on the fly, look at the results, export, and predict a held-out note.
    pretrained = args.pretrained and hub_weights_cached(resnet18)
    print(
        f"\ntraining resnet18 ({'ImageNet weights, stem summed to 1 channel' if pretrained else 'from scratch'}) "
        f"for {args.epochs} epochs on {'the GPU' if torch.cuda.is_available() else 'the CPU'}"
    )
    if args.pretrained and not pretrained:
        print("  (resnet18's ImageNet weights are not in the torch hub cache and this demo does not download them)")
    # KeepBest: the epoch with the best validation accuracy is the one kept (and exported), not the last one
    keep = KeepBest(verbose=False)
    learn = audio_learner(dls, resnet18, pretrained=pretrained, metrics=accuracy, path=args.out, cbs=keep)
    start = time.perf_counter()
    if pretrained:
        learn.fine_tune(args.epochs, base_lr=2e-3)
    else:
        learn.fit_one_cycle(args.epochs, 2e-3)
    train_s = time.perf_counter() - start
    loss, acc = learn.validate()
    print(
        f"\nvalidation accuracy {acc:.3f} (loss {loss:.3f}, epoch {keep.best_epoch}, the best) on "
        f"{len(dls.valid_ds)} notes of instruments never seen in training; {train_s:.0f} s of training"
    )

    with learn.no_bar():
        interp = AudioInterpretation.from_learner(learn)
        interp.plot_confusion_matrix(figsize=(7, 7), dpi=80)
        _save(args.out / "confusion_matrix.png")
        confused = ", ".join(f"{a} as {p} ({n}x)" for a, p, n in interp.most_confused(min_val=2)[:5])
        print(f"most confused: {confused or 'nothing twice'}")
        interp.plot_top_losses(9)
        _save(args.out / "top_losses.png")
        model = args.out / "model.pkl"
        learn.export(model)
        test = read_nsynth(root, splits=["test"]).iloc[0]
        label, _, probs = learn.predict(test.fname)
    print(
        f"exported {model}; held-out test note {Path(test.fname).name}: predicted {label} "
        f"(p={float(probs.max()):.2f}), true {test.instrument_family_str}"
    )


def _save(path: Path):
    plt.savefig(path, dpi=80, bbox_inches="tight")
    plt.close("all")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
