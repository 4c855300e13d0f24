"""Spectrogram front-end speed: fastai_audio's batch transforms vs torchaudio, nnAudio, librosa and bare torch.stft.

One batch of 64 clips x 4 s at 16 kHz. Log-mel (n_fft 1024, hop 256, 64 mels, dB with top_db 80) and CQT (84 bins
from C1, hop 256), on the CPU and, where there is one, on CUDA. Contenders are timed round-robin (one call each per
round, the order rotating) so machine noise spreads evenly; the tables give medians (and minima), and the ratio
fastai_audio / contender of the medians measured in the same run (< 1: fastai_audio is faster). Nothing here asserts
on timings.
Run: ``make bench`` or ``python bench/frontend.py [--runs 20] [--quick] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import librosa
import numpy as np
import torch
import torchaudio
from fasttransform import Pipeline

from fastai_audio.core import TensorAudio
from fastai_audio.functional import stft_power
from fastai_audio.transforms.spectral import CQT, AmplitudeToDB, AudioFrontEnd, MelSpectrogram, SpectralTransform

try:
    import nnAudio.features as nnaudio_features
except ImportError:  # the `bench` extra
    nnaudio_features = None

SR, BATCH, SECONDS = 16000, 64, 4.0
N_FFT, HOP, N_MELS, F_MIN, F_MAX, TOP_DB = 1024, 256, 64, 0.0, 8000.0, 80.0
CQT_HOP, CQT_FMIN, CQT_BINS, CQT_BPO = 256, 32.70, 84, 12

OURS = "fastai_audio MelSpectrogram + AmplitudeToDB"
TA = "torchaudio MelSpectrogram + AmplitudeToDB"
NNA = "nnAudio MelSpectrogram + torchaudio AmplitudeToDB"
LIBROSA = "librosa melspectrogram + power_to_db, per clip"
FLOOR = "bare torch.stft (floor)"
CQT_OURS = "fastai_audio CQT(output='magnitude')"
CQT_OURS_POWER = "fastai_audio CQT() (default output='power')"
CQT_NNA = "nnAudio CQT1992v2 (Magnitude)"
CQT_LIBROSA = "np.abs(librosa.cqt), per clip"


def make_batch(seed: int = 0) -> np.ndarray:
    """(BATCH, samples) float32: three tones per clip (random pitch, level, slow envelope) plus white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * SR)) / SR
    clips = []
    for _ in range(BATCH):
        y = 0.01 * rng.standard_normal(t.size)
        for _ in range(3):
            f, a, rate = rng.uniform(55, 4000), rng.uniform(0.05, 0.3), rng.uniform(0.25, 2.0)
            y += a * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t)) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        clips.append(y)
    return np.stack(clips).astype(np.float32)


# ---------------------------------------------------------------------------------------------------- contenders


def logmel_contenders(x: torch.Tensor, device: torch.device) -> dict:
    """name -> zero-argument callable computing one batch on ``device`` (modules and data already there)."""
    x2 = x.to(device)  # (B, samples)
    x3 = x2[:, None]  # (B, 1, samples)
    audio = TensorAudio(x3, sample_rate=SR)  # what the DataLoader hands the batch transforms
    window = torch.hann_window(N_FFT, periodic=True, device=device)

    mel = MelSpectrogram(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, f_min=F_MIN, f_max=F_MAX)
    to_db = AmplitudeToDB(top_db=TOP_DB)
    # what a DataLoader runs: each step in the fastai adapter, which moves it to the batch's device at the first batch
    mel_tfm, db_tfm = SpectralTransform(mel), SpectralTransform(to_db)
    mel_tfm(audio)

    ta_mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=SR,
        n_fft=N_FFT,
        hop_length=HOP,
        n_mels=N_MELS,
        f_min=F_MIN,
        f_max=F_MAX,
        power=2.0,
        norm="slaney",
        mel_scale="slaney",
    ).to(device)
    ta_spec = torchaudio.transforms.Spectrogram(n_fft=N_FFT, hop_length=HOP, power=2.0).to(device)
    ta_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=TOP_DB).to(device)

    # torchaudio gets (B, 1, samples) so that its dB clamp, like ours, is per item: torchaudio's AmplitudeToDB treats
    # a 3-d input as one (channel, freq, time) item and a 4-d input as a batch.
    rows = {
        OURS: lambda: db_tfm(mel_tfm(audio)),
        TA: lambda: ta_db(ta_mel(x3)),
        FLOOR: lambda: torch.stft(x2, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True),
        # the breakdown: where the time goes
        "  fastai_audio stft_power (STFT + |.|^2)": lambda: stft_power(x2, N_FFT, hop_length=HOP, window=window),
        "  fastai_audio MelSpectrogram module, plain tensor": lambda: mel(x3),
        "  + AmplitudeToDB module, plain tensor": lambda: to_db(mel(x3)),
        "  torchaudio Spectrogram(power=2)": lambda: ta_spec(x3),
        "  torchaudio MelSpectrogram": lambda: ta_mel(x3),
    }
    if nnaudio_features is not None:
        nna_mel = nnaudio_features.MelSpectrogram(
            sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX, power=2.0, verbose=False
        ).to(device)
        # nnAudio has no dB step: torchaudio's AmplitudeToDB follows it, on (B, 1, mels, frames) for a per-item clamp
        rows[NNA] = lambda: ta_db(nna_mel(x2)[:, None])
        rows["  nnAudio MelSpectrogram"] = lambda: nna_mel(x2)
    return rows


OVERHEAD_CALLS = 100  # calls per timed run of the per-call overhead table
OVH_OURS = "fastai_audio Pipeline(MelSpectrogram, AmplitudeToDB)"
OVH_TA = "torchaudio MelSpectrogram + AmplitudeToDB"


def overhead_contenders(device: torch.device) -> dict:
    """The same front-end on a tiny batch (2 clips of 1024 samples), so the time is the Python and launch cost per
    call, which is what a GPU step waits on: the steps in fastai's Pipeline through the adapter, on the
    ``(TensorAudio,)`` tuple a DataLoader hands over, against torchaudio's modules on the plain tensor."""
    x3 = torch.randn(2, 1, 1024, generator=torch.Generator().manual_seed(0)).to(device)
    audio = TensorAudio(x3, sample_rate=SR)
    kw = dict(n_fft=256, hop_length=256, n_mels=8)
    steps = [MelSpectrogram(sample_rate=SR, **kw), AmplitudeToDB(top_db=TOP_DB)]
    pipe = Pipeline([SpectralTransform(s) for s in steps])
    front = AudioFrontEnd(steps).to(device)
    ta = torch.nn.Sequential(
        torchaudio.transforms.MelSpectrogram(SR, norm="slaney", mel_scale="slaney", **kw),
        torchaudio.transforms.AmplitudeToDB(top_db=TOP_DB),
    ).to(device)
    pipe((audio,))  # the adapter moves the steps to the device at the first batch

    def repeat(fn):
        return lambda: [fn() for _ in range(OVERHEAD_CALLS)]

    return {
        OVH_OURS: repeat(lambda: pipe((audio,))),
        OVH_TA: repeat(lambda: ta(x3)),
        "  fastai_audio AudioFrontEnd, plain tensor": repeat(lambda: front(x3)),
    }


def cqt_contenders(x: torch.Tensor, device: torch.device) -> dict:
    x2 = x.to(device)
    audio = TensorAudio(x2[:, None], sample_rate=SR)
    kw = dict(sample_rate=SR, hop_length=CQT_HOP, f_min=CQT_FMIN, n_bins=CQT_BINS, bins_per_octave=CQT_BPO)
    ours_mag, ours_pow = SpectralTransform(CQT(**kw, output="magnitude")), SpectralTransform(CQT(**kw))
    rows = {CQT_OURS: lambda: ours_mag(audio), CQT_OURS_POWER: lambda: ours_pow(audio)}
    if nnaudio_features is not None:
        nna = nnaudio_features.CQT1992v2(
            sr=SR,
            hop_length=CQT_HOP,
            fmin=CQT_FMIN,
            n_bins=CQT_BINS,
            bins_per_octave=CQT_BPO,
            output_format="Magnitude",
            verbose=False,
        ).to(device)
        rows[CQT_NNA] = lambda: nna(x2)
    return rows


def librosa_logmel(y: np.ndarray):
    out = []
    for clip in y:
        S = librosa.feature.melspectrogram(
            y=clip, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX, power=2.0
        )
        out.append(librosa.power_to_db(S, ref=np.max, top_db=TOP_DB))
    return np.stack(out)


def librosa_cqt(y: np.ndarray):
    return np.stack(
        [
            np.abs(
                librosa.cqt(clip, sr=SR, hop_length=CQT_HOP, fmin=CQT_FMIN, n_bins=CQT_BINS, bins_per_octave=CQT_BPO)
            )
            for clip in y
        ]
    )


# -------------------------------------------------------------------------------------------------------- timing


def time_round_robin(fns: dict, runs: dict, device: torch.device, warmup: int) -> dict:
    """name -> list of seconds. Each round calls every contender still owed runs once, in an order rotating by one
    per round; a contender with fewer runs (librosa) is spread over the rounds rather than bunched at the start."""
    cuda = device.type == "cuda"

    def once(fn) -> float:
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    names = list(fns)
    with torch.no_grad():
        rounds = max(runs.values())
        for name in names:
            for _ in range(warmup if runs[name] == rounds else 1):  # one for the slow, few-run contenders
                once(fns[name])
        times = {name: [] for name in names}
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                n = runs[name]
                # contender with n < rounds runs in rounds 0, rounds/n, 2*rounds/n, ...
                if len(times[name]) < n and r >= len(times[name]) * rounds / n:
                    times[name].append(once(fns[name]))
    return times


def print_table(title: str, times: dict, ours: str, names: list, notes: dict | None = None):
    notes = notes or {}
    base = statistics.median(times[ours])
    print(f"\n{title}")
    print(
        f"| {'contender':<52} | {'median ms':>10} | {'min ms':>9} | {'runs':>4} | {'ours / it':>9} | {'it / ours':>9} |"
    )
    print(f"|{'-' * 54}|{'-' * 12}|{'-' * 11}|{'-' * 6}|{'-' * 11}|{'-' * 11}|")
    for name in names:
        if name not in times:
            continue
        med = statistics.median(times[name])
        label = name + notes.get(name, "")
        print(
            f"| {label:<52} | {med * 1e3:10.2f} | {min(times[name]) * 1e3:9.2f} | {len(times[name]):4d} | "
            f"{base / med:9.3f} | {med / base:9.2f} |"
        )


def goal(text: str, met: bool, value: str):
    print(f"- {text}: {value} -> {'MET' if met else 'MISSED'}")


def print_logmel_goals(times: dict, librosa_s: float):
    ours = statistics.median(times[OURS])
    print("\nGoals (log-mel):")
    ratio = ours / statistics.median(times[TA])
    goal("fastai_audio <= 1.0x torchaudio", ratio <= 1.0, f"{ratio:.3f}x")
    if NNA in times:
        ratio = ours / statistics.median(times[NNA])
        goal("fastai_audio <= 1.0x nnAudio", ratio <= 1.0, f"{ratio:.3f}x")
    else:
        print("- fastai_audio <= 1.0x nnAudio: not measured (nnAudio not installed)")
    ratio = ours / statistics.median(times[FLOOR])
    goal("fastai_audio <= 1.25x bare torch.stft", ratio <= 1.25, f"{ratio:.3f}x")
    speedup = librosa_s / ours
    goal("fastai_audio >= 30x faster than librosa per clip (librosa / ours)", speedup >= 30, f"{speedup:.1f}x")


def parity(x: torch.Tensor, y: np.ndarray):
    """Max |difference| in dB against fastai_audio on the CPU (a sanity check that the contenders compute the same
    thing; torchaudio's dB uses ref=1.0, so each item's maximum is subtracted to compare with ref='max')."""
    x3 = x[:, None]
    with torch.no_grad():
        ours = AmplitudeToDB(top_db=TOP_DB)(
            MelSpectrogram(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, f_min=F_MIN, f_max=F_MAX)(
                TensorAudio(x3, sample_rate=SR)
            )
        ).as_subclass(torch.Tensor)[:, 0]
        fns = logmel_contenders(x, torch.device("cpu"))
        others = {"torchaudio": fns[TA]()[:, 0]}
        if NNA in fns:
            others["nnAudio"] = fns[NNA]()[:, 0]
    # librosa's stft pads with zeros by default (pad_mode='constant'), the others reflect: compare interior frames
    edge = N_FFT // HOP + 1
    others["librosa (interior frames)"] = torch.from_numpy(librosa_logmel(y[:4]))[..., edge:-edge]
    parts = []
    for name, db in others.items():
        db = db - db.amax(dim=(-2, -1), keepdim=True)
        ref = ours[: len(db)]
        ref = ref[..., edge:-edge] if db.shape[-1] != ref.shape[-1] else ref
        parts.append(f"{name} {float((db - ref).abs().max()):.3g} dB")
    print("Parity with fastai_audio (max |diff| of the log-mels, not timed): " + ", ".join(parts))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per torch contender (default 20)")
    parser.add_argument("--quick", action="store_true", help="a few runs only: a smoke check, not a measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    runs = 3 if args.quick else args.runs
    lib_runs = 1 if args.quick else 5
    lib_cqt_runs = 1 if args.quick else 3
    warmup = 1 if args.quick else 3

    thread_note = "" if args.threads is not None else " (torch's default)"
    print(
        f"# bench/frontend.py  {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, torchaudio {torchaudio.__version__}, librosa {librosa.__version__}, "
        f"torch threads {torch.get_num_threads()}{thread_note}"
    )
    if nnaudio_features is None:
        print("nnAudio: not installed, its rows are skipped (install it with `pip install nnAudio`, the `bench` extra)")
    else:
        import nnAudio

        print(f"nnAudio {getattr(nnAudio, '__version__', '?')}")
    cuda = torch.cuda.is_available()
    print(f"GPU: {torch.cuda.get_device_name(0)}" if cuda else "GPU: none available on this machine (not measured)")
    print(
        f"Batch: {BATCH} clips x {SECONDS:g} s at {SR} Hz, float32 (fixed-seed tones + noise). Timed under "
        f"torch.no_grad, round-robin, {warmup} warm-up call(s) each; median of {runs} runs per torch contender, "
        f"{lib_runs} for librosa log-mel and {lib_cqt_runs} for librosa CQT (slow, one clip at a time on the CPU)."
        + (" QUICK MODE: a smoke check, not a measurement." if args.quick else "")
    )

    y = make_batch()
    x = torch.from_numpy(y)
    parity(x, y)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if cuda else [])

    # ---------------------------------------------------------------------------------------------- log-mel
    results = {}
    for device in devices:
        fns = logmel_contenders(x, device)
        counts = {name: runs for name in fns}
        if device.type == "cpu":
            fns[LIBROSA] = lambda: librosa_logmel(y)
            counts[LIBROSA] = lib_runs
        results[device.type] = time_round_robin(fns, counts, device, warmup)
    librosa_s = statistics.median(results["cpu"][LIBROSA])
    main_rows = [OURS, TA, NNA, LIBROSA, FLOOR]
    for device in devices:
        times = dict(results[device.type])
        notes = {}
        if device.type != "cpu":
            times[LIBROSA] = results["cpu"][LIBROSA]
            notes[LIBROSA] = " (CPU)"
        print_table(
            f"## Log-mel on {device.type.upper()}: n_fft {N_FFT}, hop {HOP}, {N_MELS} mels {F_MIN:g}-{F_MAX:g} "
            f"Hz, power 2, dB top_db {TOP_DB:g} ('ours / it' < 1: fastai_audio faster)",
            times,
            OURS,
            main_rows,
            notes,
        )
        print_logmel_goals(times, librosa_s)
        print_table(
            f"Where the time goes on {device.type.upper()} (same run, same batch)",
            times,
            OURS,
            [FLOOR] + [n for n in times if n.startswith("  ")] + [TA, OURS],
        )

    # ---------------------------------------------------------------------------------------- per-call overhead
    for device in devices:
        fns = overhead_contenders(device)
        times = time_round_robin(fns, {name: runs for name in fns}, device, warmup)
        print_table(
            f"## Per-call cost on {device.type.upper()}: a tiny batch (2 clips of 1024 samples), ms per "
            f"{OVERHEAD_CALLS} calls (the Python and launch cost a GPU step waits on)",
            times,
            OVH_OURS,
            [OVH_OURS, OVH_TA, "  fastai_audio AudioFrontEnd, plain tensor"],
        )

    # -------------------------------------------------------------------------------------------------- CQT
    results = {}
    for device in devices:
        fns = cqt_contenders(x, device)
        counts = {name: runs for name in fns}
        if device.type == "cpu":
            fns[CQT_LIBROSA] = lambda: librosa_cqt(y)
            counts[CQT_LIBROSA] = lib_cqt_runs
        results[device.type] = time_round_robin(fns, counts, device, warmup)
    for device in devices:
        times = dict(results[device.type])
        notes = {}
        if device.type != "cpu":
            times[CQT_LIBROSA] = results["cpu"][CQT_LIBROSA]
            notes[CQT_LIBROSA] = " (CPU)"
        print_table(
            f"## CQT on {device.type.upper()}: {CQT_BINS} bins from {CQT_FMIN} Hz, {CQT_BPO}/octave, hop "
            f"{CQT_HOP}, magnitude (ratios against the magnitude row)",
            times,
            CQT_OURS,
            [CQT_OURS, CQT_OURS_POWER, CQT_NNA, CQT_LIBROSA],
            notes,
        )
    print(
        "\nCQT: no stated speed goal beyond doing the same job; the ratios above are ours vs nnAudio and vs librosa. "
        "Not numerically identical: nnAudio uses librosa's old Q (filters ~3 % shorter) and one 2^k-wide kernel "
        "bank for every bin; librosa computes lower octaves on a downsampled signal."
    )


if __name__ == "__main__":
    main()
