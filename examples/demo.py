"""The main job, end to end on this machine: `make demo`.

Renders a small NSynth-format data set from the General MIDI soundfont that pretty_midi ships (no download),
loads it with AudioDataLoaders.from_nsynth, prints a summary of the data set and of one batch, and writes a
show_batch picture of the waveforms, then of the log-mel spectrograms that the batch transforms compute, to the
output folder.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fastai_audio.data import AudioDataLoaders  # noqa: E402
from fastai_audio.datasets import read_nsynth, synth_nsynth  # noqa: E402
from fastai_audio.transforms import mel_transforms  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "demo_out", help="where the pictures go")
    parser.add_argument("--data", type=Path, default=ROOT / ".cache" / "nsynth_small", help="data set folder")
    parser.add_argument("--size", default="small", choices=("small", "medium", "full"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    root = synth_nsynth(args.data, size=args.size, progress=True)
    print(f"data set: {root} ({time.perf_counter() - start:.1f} s, cached for the next run)\n")

    df = read_nsynth(root)
    print("notes per family and split:")
    print(df.pivot_table(index="instrument_family_str", columns="split", values="note_str", aggfunc="count",
                         fill_value=0, margins=True, margins_name="total").to_string())  # fmt: skip
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
    start = time.perf_counter()
    dls = AudioDataLoaders.from_nsynth(root, bs=16, num_workers=0, batch_tfms=mel_transforms("nsynth"))
    x, _ = dls.one_batch()
    setup_s = time.perf_counter() - start
    print(
        f"\nwith batch_tfms=mel_transforms('nsynth'): {type(x).__name__} {tuple(x.shape)} "
        f"({x.scale} scale, {x.f_min:g}-{x.f_max:g} Hz, hop {x.hop_length}; set-up {setup_s:.1f} s)"
    )
    dls.show_batch(max_n=9)
    picture = args.out / "show_batch_spectrograms.png"
    plt.savefig(picture, dpi=80)
    plt.close("all")
    print(f"wrote {picture}")


if __name__ == "__main__":
    main()
