"""Named front-end configurations and the factories that build transform lists from them.

Presets are small frozen configs (timm's habit), not copy-pasted argument lists. ``get_frequency_batch_transforms``
keeps the seed's signature (``n_hop`` is its name for ``hop_length``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..errors import ParameterError
from .spectral import AmplitudeToDB, LogCompress, MelSpectrogram, SpecNormalize

__all__ = ["MelConfig", "MEL_PRESETS", "mel_transforms", "get_frequency_batch_transforms"]


@dataclass(frozen=True)
class MelConfig:
    """The parameters of a log-mel front-end.

    Attributes mirror ``MelSpectrogram`` (torchaudio's names) plus ``top_db`` and ``ref`` for ``AmplitudeToDB``,
    ``compression``, the ``LogCompress`` scale that replaces the decibels when set (MusiCNN's ``log10(1 + 10000 x)``),
    and ``normalize``, the ``SpecNormalize`` mode (``None``: none, e.g. for a network that normalises its input
    itself).

    Examples:
        >>> MEL_PRESETS["nsynth"].hop_length
        256
        >>> cfg = replace(MEL_PRESETS["nsynth"], n_mels=128)
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int | None = None
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float | None = None
    mel_scale: str = "slaney"
    norm: str | None = "slaney"
    power: float = 2.0
    pad_mode: str = "reflect"
    top_db: float | None = 80.0
    ref: str | float = "max"
    normalize: str | None = "dataset"
    compression: float | None = None

    def transforms(self, *, decibels: bool = True, normalize: str | None | object = ..., **kwargs) -> list:
        """``[MelSpectrogram, AmplitudeToDB, SpecNormalize]`` for this config (``LogCompress`` in place of
        ``AmplitudeToDB`` when ``compression`` is set).

        Args:
            decibels: include ``AmplitudeToDB(top_db=self.top_db)`` (or the ``LogCompress`` step).
            normalize: ``'dataset'`` (per-frequency statistics of the training set), ``'item'``, or None; default:
                the config's ``normalize``.
            **kwargs: config fields to change first (e.g. ``n_mels=128``), or other ``MelSpectrogram`` arguments
                (``center``, ``pad_mode``, ``trainable``).
        """
        names = {f.name for f in fields(self)}
        cfg = replace(self, **{k: v for k, v in kwargs.items() if k in names})
        extra = {k: v for k, v in kwargs.items() if k not in names}
        mel_kwargs = {k: v for k, v in asdict(cfg).items() if k not in ("top_db", "ref", "normalize", "compression")}
        tfms = [MelSpectrogram(**mel_kwargs, **extra)]
        if decibels and cfg.compression is not None:
            tfms.append(LogCompress(cfg.compression))
        elif decibels:
            stype = "power" if cfg.power == 2.0 else "magnitude"
            tfms.append(AmplitudeToDB(stype=stype, ref=cfg.ref, top_db=cfg.top_db))
        normalize = cfg.normalize if normalize is ... else normalize
        if normalize is not None:
            tfms.append(SpecNormalize(mode=normalize))
        return tfms


MEL_PRESETS = {
    "nsynth": MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64, f_min=20.0, f_max=8000.0),
    "nsynth40": MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=40, f_min=20.0, f_max=8000.0),
    "speech": MelConfig(sample_rate=16000, n_fft=512, hop_length=160, win_length=400, n_mels=80, f_max=8000.0),
    "music": MelConfig(sample_rate=22050, n_fft=2048, hop_length=512, n_mels=128),
    "panns": MelConfig(
        sample_rate=32000,
        n_fft=1024,
        hop_length=320,
        n_mels=64,
        f_min=50.0,
        f_max=14000.0,
        top_db=None,
        ref=1.0,
        normalize=None,
    ),
    "musicnn": MelConfig(
        sample_rate=16000,
        n_fft=512,
        hop_length=256,
        n_mels=96,
        pad_mode="constant",
        top_db=None,
        ref=1.0,
        compression=10000.0,
        normalize=None,
    ),
}
"""Named configurations. ``nsynth``: the seed's settings (16 kHz, n_fft 1024, hop 256, 20-8000 Hz) with 64 mels;
``nsynth40``: the same with the seed's 40 mels; ``speech``: 25 ms windows, 10 ms hop, 80 mels to 8 kHz (the common
ASR front-end); ``music``: 22.05 kHz, n_fft 2048, hop 512, 128 mels (librosa's defaults); ``panns``: the log-mel
the PANNs AudioSet checkpoints were trained on (32 kHz, n_fft 1024, hop 320, 64 mels, 50-14,000 Hz, ``10 log10``
of the power with ``ref=1.0``, no ``top_db`` and no ``SpecNormalize``: the network's first BatchNorm normalises),
tested equal to the reference implementation's (``audio_learner(dls, "cnn14", ...)``); ``musicnn``: the front-end
of the musicnn package's MusiCNN and VGG checkpoints (16 kHz, n_fft 512, hop 256, 96 mels, librosa's
``melspectrogram`` with its zero padding, then ``log10(1 + 10000 x)``, no normalisation: the network's first
BatchNorm normalises), tested equal to the package's own (``audio_learner(dls, "musicnn", ...)``)."""


def mel_transforms(preset: str = "nsynth", **kwargs) -> list:
    """The batch transforms of a named preset: ``MEL_PRESETS[preset].transforms(**kwargs)``.

    Examples:
        >>> dls = AudioDataLoaders.from_nsynth(root, batch_tfms=mel_transforms("nsynth"))
    """
    if preset not in MEL_PRESETS:
        raise ParameterError(f"unknown preset {preset!r}; choose one of {sorted(MEL_PRESETS)}")
    return MEL_PRESETS[preset].transforms(**kwargs)


def get_frequency_batch_transforms(
    n_fft: int = 1024,
    n_hop: int = 256,
    n_mels: int = 40,
    sample_rate: int = 16000,
    f_min: float = 0.0,
    f_max: float | None = None,
    decibels: bool = True,
    *,
    top_db: float | None = 80.0,
    normalize: str | None = "dataset",
    **mel_kwargs,
) -> list:
    """The seed's front-end factory: log-mel batch transforms for ``AudioItemList....databunch(tfms=...)``.

    Args:
        n_fft: FFT size.
        n_hop: hop length in samples (the seed's name for ``hop_length``).
        n_mels: mel bands.
        sample_rate: rate of the audio (Hz).
        f_min: lowest frequency (Hz).
        f_max: highest frequency (Hz; default Nyquist).
        decibels: convert to dB (``AmplitudeToDB``).
        top_db: dynamic range kept per item.
        normalize: ``'dataset'``, ``'item'`` or None (see ``SpecNormalize``).
        **mel_kwargs: any other ``MelSpectrogram`` argument (``mel_scale``, ``norm``, ``power``, ``trainable``...).

    Returns:
        ``[MelSpectrogram, AmplitudeToDB, SpecNormalize]`` (the last two optional); batches become
        ``TensorSpectrogram (bs, 1, n_mels, frames)``.

    Examples:
        >>> tfms = get_frequency_batch_transforms(n_fft=1024, n_hop=256, n_mels=64, sample_rate=16000)
        >>> data = (AudioItemList.from_folder("nsynth").split_by_folder()
        ...         .label_from_re(r"(\\w+)_\\w+_\\d+-\\d+-\\d+.wav$").databunch(bs=64, tfms=tfms))
        >>> data.one_batch()[0].shape
        torch.Size([64, 1, 64, 251])
    """
    cfg = MelConfig(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=n_hop, n_mels=n_mels, f_min=f_min, f_max=f_max, top_db=top_db
    )
    return cfg.transforms(decibels=decibels, normalize=normalize, **mel_kwargs)
