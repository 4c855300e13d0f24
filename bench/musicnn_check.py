"""Proof of equality: fastai_audio's MusiCNN and MusicVGG (PyTorch, weights read without TensorFlow) against the
original graphs.

The original runs in a side environment with TensorFlow: the checkpoint's own ``.meta`` graph is imported
(``import_meta_graph``; the ``_output_shapes`` hints of its training nodes, which TensorFlow 2 rejects, are
dropped) and restored from the checkpoint, and ``model/Sigmoid`` is read for ``model/Placeholder`` (log-mel patches
``(batch, 187, 96)``) with ``is_training`` false. No code of the ``musicnn`` package runs. Both models get the same
log-mel patches, made as the ``musicnn`` package makes them (librosa, 16 kHz, n_fft 512, hop 256, 96 mels,
``log10(1 + 10000 x)``) from real audio: the FSDD recordings in ``../shared/data/fsdd`` (when present) and notes
rendered from the General MIDI soundfont. Goal: tag probabilities within 1e-4, the same top-5 tags.

Not part of ``make test`` (it needs TensorFlow). Run:

    python bench/musicnn_check.py                      # makes .cache/tfenv with tensorflow-cpu the first time
    python bench/musicnn_check.py --tf-python /path/to/python/with/tensorflow
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastai_audio.datasets import synth_nsynth  # noqa: E402
from fastai_audio.models.musicnn import MusiCNN, MusicVGG, load_musicnn_weights, musicnn_checkpoint  # noqa: E402

CACHE = ROOT / ".cache" / "bench"
FSDD = ROOT.parent / "shared" / "data" / "fsdd"

TF_SIDE = """
import sys, numpy as np, tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
tf.compat.v1.disable_eager_execution()
prefix, inputs, out = sys.argv[1:4]
meta = meta_graph_pb2.MetaGraphDef()
meta.ParseFromString(open(prefix + ".meta", "rb").read())
for node in meta.graph_def.node:
    node.attr.pop("_output_shapes", None)
with tf.compat.v1.Session() as sess:
    saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
    saver.restore(sess, prefix)
    g = tf.compat.v1.get_default_graph()
    x = np.load(inputs)
    probs = sess.run(g.get_tensor_by_name("model/Sigmoid:0"),
                     {g.get_tensor_by_name("model/Placeholder:0"): x,
                      g.get_tensor_by_name("model/Placeholder_2:0"): False})
np.save(out, probs)
print(tf.__version__)
"""


def log_mel_patches(files: list, frames: int = 187) -> np.ndarray:
    """``(n, 187, 96)`` float32: the first 3 s patch of each file, as the musicnn package computes it."""
    import librosa

    patches = []
    for f in files:
        audio, sr = librosa.load(str(f), sr=16000)
        mel = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=256, n_fft=512, n_mels=96).T
        mel = np.log10(10000 * mel + 1)
        if len(mel) < frames:
            mel = np.pad(mel, ((0, frames - len(mel)), (0, 0)))
        patches.append(mel[:frames])
    return np.stack(patches).astype(np.float32)


def tf_python(given: str | None) -> str:
    if given:
        return given
    env = ROOT / ".cache" / "tfenv"
    python = env / "bin" / "python"
    if not python.exists():
        print(f"making {env} with tensorflow-cpu (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "tensorflow-cpu", "numpy"], check=True)
    return str(python)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf-python", default=None, help="a Python with TensorFlow (default: .cache/tfenv)")
    parser.add_argument("--n", type=int, default=32, help="clips of each source")
    args = parser.parse_args()
    python = tf_python(args.tf_python)

    sources = {}
    if FSDD.is_dir():
        sources["FSDD recordings"] = sorted(FSDD.rglob("*.wav"))[:: max(1, len(list(FSDD.rglob("*.wav"))) // args.n)][
            : args.n
        ]
    else:
        print(f"({FSDD} not found: FSDD left out; it is in the project's shared data, not in a fresh clone)")
    root = synth_nsynth(CACHE / "nsynth_small", size="small", progress=False)
    sources["rendered notes (GM soundfont)"] = sorted((root / "valid").glob("*.wav"))[: args.n]

    print(f"# bench/musicnn_check.py  {time.strftime('%Y-%m-%d %H:%M')}  torch {torch.__version__}\n")
    print("| checkpoint | audio | clips | max abs diff of tag probabilities | same top-5 tags |")
    print("|---|---|---|---|---|")
    worst, same = 0.0, True
    for name in ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg"):
        prefix = musicnn_checkpoint(name)
        net = MusicVGG(pools=name[:3]) if name.endswith("vgg") else MusiCNN()
        model = load_musicnn_weights(net, name).eval()
        for label, files in sources.items():
            x = log_mel_patches(files)
            with tempfile.TemporaryDirectory() as tmp:
                np.save(Path(tmp) / "x.npy", x)
                run = subprocess.run(
                    [python, "-c", TF_SIDE, prefix, str(Path(tmp) / "x.npy"), str(Path(tmp) / "p.npy")],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                )
                if run.returncode:
                    raise SystemExit(f"the TensorFlow side failed:\n{run.stderr[-3000:]}")
                want = np.load(Path(tmp) / "p.npy")
            with torch.no_grad():
                got = torch.sigmoid(model(torch.from_numpy(x).transpose(1, 2)[:, None])).numpy()
            diff = float(np.abs(got - want).max())
            top = all(set(np.argsort(-g)[:5]) == set(np.argsort(-w)[:5]) for g, w in zip(got, want))
            worst, same = max(worst, diff), same and top
            print(f"| {name} | {label} | {len(files)} | {diff:.2e} | {'yes' if top else 'NO'} |")
    verdict = "met" if worst <= 1e-4 and same else "MISSED"
    print(f"\ngoal: within 1e-4 and the same top-5 tags: {verdict} (worst {worst:.2e})")
    print(json.dumps({"worst": worst, "same_top5": same}))


if __name__ == "__main__":
    main()
