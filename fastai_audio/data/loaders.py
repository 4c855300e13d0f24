"""``AudioDataLoaders``: one-line constructors for the common layouts (folders, regex on names, a DataFrame,
NSynth), in the style of fastai's ``ImageDataLoaders``."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
from fastai.data.block import DataBlock, MultiCategoryBlock, TransformBlock
from fastai.data.core import DataLoaders, test_set
from fastai.data.transforms import FuncSplitter, RandomSplitter, ToTensor, parent_label
from fastai.torch_core import rank_distrib
from fastcore.foundation import L
from fasttransform import DisplayedTransform

from .._compat import DirectEncodes
from .._validate import check_choice
from ..audio_config import AudioConfig
from ..core import TensorAudio
from ..decode import AudioSource
from ..errors import AudioFileError, ParameterError
from ..files import absolute, in_folder
from ..transforms.item import audio_config_of, find_opener
from .block import AudioBlock, RegexLabeller, get_audio_files
from .check import drop_bad_files
from .items import FastCategorize

__all__ = ["AudioDataLoaders"]


def _block_kwargs(sample_rate, duration, mono, pad_mode) -> dict:
    return {"sample_rate": sample_rate, "duration": duration, "mono": mono, "pad_mode": pad_mode}


class AudioDataLoaders(DataLoaders):
    """fastai ``DataLoaders`` for audio classification, built from common data layouts.

    Every constructor takes the ``AudioBlock`` arguments (``sample_rate=16000``, ``duration=4.0``, ``mono=True``,
    ``pad_mode='zeros'``), ``on_error='raise'|'skip'`` (skip decodes every file once up front and warns naming
    each bad one; a file that goes bad later is skipped when it is read, its row taking the next item, and named
    too), ``item_tfms``/``batch_tfms`` (e.g. the spectrogram front-end) and fastai's loader arguments
    (``bs``, ``num_workers``, ``device``, ...). Batches are ``(TensorAudio (bs, channels, samples), labels)``.

    Examples:
        >>> dls = AudioDataLoaders.from_folder("data", duration=1.0, bs=4)
        >>> dls.classes, len(dls.train_ds), len(dls.valid_ds)
        (['high', 'low'], 8, 4)
        >>> dls.one_batch()[0].shape
        torch.Size([4, 1, 16000])
    """

    @property
    def classes(self) -> list:
        """The class names (the labels' vocabulary), as in fastai v1's ``data.classes``."""
        return list(self.vocab)

    @property
    def audio_config(self) -> AudioConfig | None:
        """What every clip becomes (rate, duration, channels, padding): the ``AudioConfig`` the loaders were built
        with, which ``export_onnx`` writes into the model; ``None`` for loaders that do not open audio files.

        Examples:
            >>> audio_dls.audio_config
            AudioConfig(sample_rate=16000, duration=1.0, mono=True, pad_mode='zeros')
        """
        return audio_config_of(getattr(self.valid_ds, "template", None) or self.valid_ds)

    def show_batch(self, b=None, max_n: int = 9, **kwargs):
        """Show ``max_n`` items of a training batch (waveforms, or spectrograms once the front-end runs).

        As in fastai v1 (and the seed), an int as the first argument is the number of items: ``show_batch(3)``.
        Other arguments go to fastai's ``TfmdDL.show_batch`` (``ctxs``, ``show``, ``unique``, ``figsize``...).
        Under ``torchrun`` only rank 0 draws.
        """
        if rank_distrib() > 0:
            return None
        if isinstance(b, int):
            b, max_n = None, b
        return self.train.show_batch(b=b, max_n=max_n, **kwargs)

    def test_dl(self, test_items, rm_type_tfms=None, with_labels: bool = False, **kwargs):
        """A ``DataLoader`` over new audio (validation transforms: centred crops), e.g. for ``get_preds``.

        ``test_items`` are file paths (``str`` or ``Path``), ``AudioSource`` items (e.g. the rows of a Hugging Face
        split: ``read_hf(ds).audio``) or ``TensorAudio`` clips (any rate and channel count: they go through the same
        downmix, resample and crop as the training files). Labels are not needed.

        Examples:
            >>> preds, _ = learn.get_preds(dl=dls.test_dl(get_audio_files("new_recordings")))
            >>> preds.shape                 # 3 files, 2 classes
            torch.Size([3, 2])
        """
        template = getattr(self.valid_ds, "template", None)  # streamed shards: their file loaders' pipelines
        if template is not None:
            items = [Path(o) if isinstance(o, str) else o for o in test_items]
            opener = find_opener(template)[0] if rm_type_tfms is None else rm_type_tfms
            return self.valid.new(test_set(template, items, rm_tfms=opener, with_labels=with_labels), **kwargs)
        if not with_labels and rm_type_tfms is None:
            items = [Path(o) if isinstance(o, str) else o for o in test_items]
            opener = find_opener(self.valid_ds)[0]
            if opener is not None and all(isinstance(o, (Path, TensorAudio, AudioSource)) for o in items):
                return super().test_dl(items, rm_type_tfms=opener, with_labels=False, **kwargs)
        return super().test_dl(test_items, rm_type_tfms=rm_type_tfms, with_labels=with_labels, **kwargs)

    @classmethod
    def _from_block(
        cls,
        source,
        path,
        *,
        get_items=None,
        get_x=None,
        get_y,
        splitter,
        vocab=None,
        sort_vocab=True,
        label_delim=None,
        sample_rate=16000,
        duration=4.0,
        mono=True,
        pad_mode="zeros",
        item_tfms=None,
        batch_tfms=None,
        **kwargs,
    ):
        y_block = (
            MultiCategoryBlock(vocab=vocab)
            if label_delim is not None
            else TransformBlock(type_tfms=FastCategorize(vocab=vocab, sort=sort_vocab))
        )
        dblock = DataBlock(
            blocks=(AudioBlock(**_block_kwargs(sample_rate, duration, mono, pad_mode)), y_block),
            get_items=get_items,
            get_x=get_x,
            get_y=get_y,
            splitter=splitter,
            item_tfms=item_tfms,
            batch_tfms=batch_tfms,
        )
        # ToTensor (which fastai adds to every block) has nothing to convert here: audio and labels are tensors
        # already, and its failed type lookup per item costs more than the crop.
        dblock.item_tfms = L(t for t in dblock.item_tfms if not isinstance(t, ToTensor))
        dls = dblock.dataloaders(source, path=path, **kwargs)
        for name, ds in (("training", dls.train_ds), ("validation", dls.valid_ds)):
            if len(ds) == 0:
                raise ParameterError(
                    f"the {name} set is empty: the split put all {len(dls.train_ds) + len(dls.valid_ds)} items in "
                    f"the other one; check the split (valid_pct, valid_col, the valid folder) so both get items"
                )
        return cls(*dls.loaders, path=dls.path, device=dls.device)

    @classmethod
    def from_files(
        cls,
        path,
        files,
        label_func,
        *,
        valid_pct: float = 0.2,
        seed: int | None = None,
        valid_func=None,
        on_error: str = "raise",
        **kwargs,
    ) -> AudioDataLoaders:
        """Label ``files`` with ``label_func`` and split them randomly (``valid_pct``) or with ``valid_func``.

        Args:
            path: root folder (where exports and the ``path`` of the Learner go).
            files: audio file paths.
            label_func: picklable callable ``Path -> label`` (a module-level function, not a lambda, so that
                ``learn.export()`` can save it).
            valid_pct: fraction held out at random (ignored when ``valid_func`` is given).
            seed: seed of the random split.
            valid_func: ``Path -> bool``, True for validation files.
            on_error: ``'raise'`` or ``'skip'`` bad files.

        Examples:
            >>> dls = AudioDataLoaders.from_files("data", get_audio_files("data"), parent_label, valid_pct=0.2)
        """
        files = drop_bad_files(files, on_error)
        if not files:
            raise ParameterError(f"no audio files to load under {path}; check the path and the file extensions")
        splitter = FuncSplitter(valid_func) if valid_func is not None else RandomSplitter(valid_pct, seed=seed)
        return cls._from_block(files, path, get_y=label_func, splitter=splitter, on_error=on_error, **kwargs)

    @classmethod
    def from_folder(
        cls,
        path,
        train: str = "train",
        valid: str = "valid",
        valid_pct: float | None = None,
        label_func=None,
        *,
        seed: int | None = None,
        on_error: str = "raise",
        **kwargs,
    ) -> AudioDataLoaders:
        """Audio files in ``path/train`` and ``path/valid`` (or split at random with ``valid_pct``).

        Labels come from each file's parent folder (``path/train/dog/1.wav`` is a ``dog``) unless
        ``label_func`` is given.

        Args:
            path: the data set's root.
            train: name of the training sub-folder.
            valid: name of the validation sub-folder.
            valid_pct: if given, ignore the folders' split and hold out this fraction at random.
            label_func: picklable ``Path -> label``; default ``parent_label``.
            seed: seed of the random split.
            on_error: ``'raise'`` or ``'skip'`` bad files.

        Examples:
            >>> dls = AudioDataLoaders.from_folder("speech_commands", valid_pct=0.1, duration=1.0, bs=8, seed=0)
            >>> xb, yb = dls.one_batch()
            >>> type(xb).__name__, xb.shape, dls.vocab
            ('TensorAudio', torch.Size([8, 1, 16000]), ['no', 'yes'])
        """
        path = Path(path)
        folders = None if valid_pct is not None else [train, valid]
        files = get_audio_files(path, folders=folders)
        if valid_pct is None:
            _check_folder_split(path, train, valid, files, labels_from_folders=label_func is None)
        valid_func = None if valid_pct is not None else _InFolder(path / valid)
        return cls.from_files(
            path,
            files,
            label_func or parent_label,
            valid_pct=valid_pct or 0.2,
            seed=seed,
            valid_func=valid_func,
            on_error=on_error,
            **kwargs,
        )

    @classmethod
    def from_re(
        cls,
        path,
        pattern: str,
        *,
        fnames=None,
        valid_pct: float | None = 0.2,
        train: str = "train",
        valid: str = "valid",
        seed: int | None = None,
        on_error: str = "raise",
        **kwargs,
    ) -> AudioDataLoaders:
        """Label each file with the first group of ``pattern`` searched in its path.

        Args:
            path: the data set's root.
            pattern: regular expression with one group, e.g. NSynth's family ``r'(\\w+)_\\w+_\\d+-\\d+-\\d+.wav$'``.
            fnames: the files (default: every audio file under ``path``).
            valid_pct: fraction held out at random; ``None`` splits by the ``train``/``valid`` folders instead
                (files outside both are left out).
            train: the training sub-folder when ``valid_pct=None``.
            valid: the validation sub-folder when ``valid_pct=None``.
            seed: seed of the random split.
            on_error: ``'raise'`` or ``'skip'`` bad files.

        Raises:
            ParameterError: a file the pattern does not match (the message names it and the pattern).

        Examples:
            >>> dls = AudioDataLoaders.from_re("nsynth", r"(\\w+)_\\w+_\\d+-\\d+-\\d+.wav$", valid_pct=None)
        """
        path = Path(path)
        folders = None if valid_pct is not None else [train, valid]
        files = get_audio_files(path, folders=folders) if fnames is None else list(fnames)
        if valid_pct is None:
            _check_folder_split(path, train, valid, files, labels_from_folders=False)
        valid_func = None if valid_pct is not None else _InFolder(path / valid)
        return cls.from_files(
            path,
            files,
            RegexLabeller(pattern),
            valid_pct=valid_pct or 0.2,
            seed=seed,
            valid_func=valid_func,
            on_error=on_error,
            **kwargs,
        )

    @classmethod
    def from_df(
        cls,
        df: pd.DataFrame,
        path=".",
        fn_col=0,
        label_col=1,
        *,
        valid_col=None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        folder: str | None = None,
        suff: str = "",
        label_delim: str | None = None,
        on_error: str = "raise",
        **kwargs,
    ) -> AudioDataLoaders:
        """Files and labels from a DataFrame (e.g. a CSV of ``filename,label``).

        Args:
            df: one row per clip.
            path: folder the file names are relative to.
            fn_col: column name or position of the file name (or of ``AudioSource`` items, used as they are).
            label_col: column name or position of the label.
            valid_col: boolean column marking validation rows (otherwise a random ``valid_pct`` split).
            valid_pct: fraction held out at random when there is no ``valid_col``.
            seed: seed of the random split.
            folder: sub-folder of ``path`` holding the files.
            suff: suffix appended to every file name (e.g. ``'.wav'``).
            label_delim: split labels on this delimiter for multi-label targets (``MultiCategoryBlock``).
            on_error: ``'raise'`` or ``'skip'`` rows whose file is bad.

        Examples:
            >>> df = pd.read_csv("esc50/meta/esc50.csv")
            >>> dls = AudioDataLoaders.from_df(df, "esc50", "filename", "category", folder="audio",
            ...                                duration=5.0, sample_rate=22050)
        """
        path = Path(path)
        df = df.reset_index(drop=True)
        fn_name = df.columns[fn_col] if isinstance(fn_col, int) else fn_col
        if fn_name not in df.columns:
            raise ParameterError(f"fn_col {fn_col!r} is not a column of the DataFrame ({list(df.columns)})")
        label_name = df.columns[label_col] if isinstance(label_col, int) else label_col
        if label_name not in df.columns:
            raise ParameterError(f"label_col {label_col!r} is not a column of the DataFrame ({list(df.columns)})")
        folder_path = path / folder if folder else path
        files = [o if isinstance(o, AudioSource) else folder_path / f"{o}{suff}" for o in df[fn_name]]
        labels = list(df[label_name])
        if label_delim is not None:
            labels = [str(o).split(label_delim) if isinstance(o, str) else list(o) for o in labels]
        if valid_col is not None:
            is_valid = [bool(v) for v in df[valid_col]]
        if check_choice("on_error", on_error, ("raise", "skip")) == "skip":
            keep = {str(f) for f in drop_bad_files(files, on_error)}
            mask = [str(f) in keep for f in files]
            files, labels = [o for o, m in zip(files, mask) if m], [o for o, m in zip(labels, mask) if m]
            is_valid = [o for o, m in zip(is_valid, mask) if m] if valid_col is not None else None
        # Plain [file, label] lists (not tuples, which fastai transforms element-wise): a DataFrame row per item
        # costs more than decoding a short clip.
        items = [[f, label] for f, label in zip(files, labels)]
        if valid_col is not None:
            splitter = _FixedSplit(
                [i for i, v in enumerate(is_valid) if not v], [i for i, v in enumerate(is_valid) if v]
            )
        else:
            splitter = RandomSplitter(valid_pct, seed=seed)
        get_x, get_y = _Field(0), _Field(1)
        return cls._from_block(
            items,
            path,
            get_x=get_x,
            get_y=get_y,
            splitter=splitter,
            label_delim=label_delim,
            on_error=on_error,
            **kwargs,
        )

    @classmethod
    def from_nsynth(
        cls,
        path,
        label: str = "instrument_family_str",
        *,
        sources=None,
        families=None,
        train: str = "train",
        valid: str = "valid",
        **kwargs,
    ) -> AudioDataLoaders:
        """An NSynth data set (the official layout or ``synth_nsynth``'s), labelled by an ``examples.json`` field.

        Args:
            path: the data set's root.
            label: the field to predict: ``'instrument_family_str'`` (11 classes), ``'instrument_source_str'``,
                ``'instrument_str'``, ``'pitch'``, ...
            sources: keep only these instrument sources (e.g. ``'acoustic'``).
            families: keep only these instrument families (e.g. ``['guitar', 'mallet']``).
            train: the split used for training.
            valid: the split used for validation (``'test'`` stays out).

        Examples:
            >>> dls = AudioDataLoaders.from_nsynth(synth_nsynth("nsynth", progress=False), bs=64)
            >>> dls.c, dls.classes[:3]
            (11, ['bass', 'brass', 'flute'])
        """
        from ..datasets import read_nsynth

        df = read_nsynth(path, splits=[train, valid], sources=sources, families=families)
        if label not in df.columns:
            raise ParameterError(f"label {label!r} is not an NSynth field; choose one of {list(df.columns)}")
        df = df.assign(is_valid=df["split"] == valid)
        kwargs.setdefault("duration", 4.0)
        return cls.from_df(df, path=path, fn_col="fname", label_col=label, valid_col="is_valid", **kwargs)

    @classmethod
    def from_esc50(cls, path, fold: int = 1, *, esc10: bool = False, **kwargs) -> AudioDataLoaders:
        """ESC-50 with its official fold ``fold`` (1-5) as the validation set and the other four for training; labels
        are the 50 categories (``esc10=True``: the ESC-10 subset). Clips are 5 s at 44.1 kHz (``duration=5.0``
        unless given). Results are reported as the mean over the five folds: ``cross_validate``.

        Examples:
            >>> dls = AudioDataLoaders.from_esc50("esc50", fold=1, bs=2)   # a miniature of ESC-50's layout
            >>> dls.c, len(dls.train_ds), len(dls.valid_ds)
            (2, 8, 2)
        """
        from ..datasets.folds import ESC50_FOLDS, fold_split, read_esc50

        df = fold_split(read_esc50(path, esc10=esc10), fold, ESC50_FOLDS, "ESC-50")
        kwargs.setdefault("duration", 5.0)
        return cls.from_df(df, path=path, fn_col="fname", label_col="label", valid_col="is_valid", **kwargs)

    @classmethod
    def from_urbansound8k(cls, path, fold: int = 10, **kwargs) -> AudioDataLoaders:
        """UrbanSound8K with its official fold ``fold`` (1-10) as the validation set and the other nine for
        training; labels are the 10 classes. Clips are up to 4 s at many rates (``duration=4.0`` unless given: the
        shorter ones padded). Results are reported as the mean over the ten folds: ``cross_validate``.

        Examples:
            >>> dls = AudioDataLoaders.from_urbansound8k("UrbanSound8K", fold=10, sample_rate=22050)  # doctest: +SKIP
            >>> dls.c                                                                               # doctest: +SKIP
            10
        """
        from ..datasets.folds import URBANSOUND8K_FOLDS, fold_split, read_urbansound8k

        df = fold_split(read_urbansound8k(path), fold, URBANSOUND8K_FOLDS, "UrbanSound8K")
        kwargs.setdefault("duration", 4.0)
        return cls.from_df(df, path=path, fn_col="fname", label_col="label", valid_col="is_valid", **kwargs)

    @classmethod
    def from_speech_commands(cls, path, *, words=None, valid: str = "validation", **kwargs) -> AudioDataLoaders:
        """Speech Commands with its official split: the files of ``validation_list.txt`` (or, with
        ``valid='testing'``, ``testing_list.txt``) validate, those in neither list train (the other list stays
        out). Labels are the words (``words=`` keeps some); ``duration=1.0`` unless given. The
        ``_background_noise_`` recordings are for ``AddBackground(path / "_background_noise_", ...)``.

        Examples:
            >>> root = "speech_commands_v0.02"
            >>> dls = AudioDataLoaders.from_speech_commands(root, words=["yes", "no"])  # doctest: +SKIP
            >>> dls.vocab                                                               # doctest: +SKIP
            ['no', 'yes']
        """
        from ..datasets.speech_commands import read_speech_commands

        if valid not in ("validation", "testing"):
            raise ParameterError(f"valid must be 'validation' or 'testing' (the official lists), got {valid!r}")
        df = read_speech_commands(path, words=words)
        df = df[df["split"].isin(["train", valid])].assign(is_valid=lambda d: d["split"] == valid)
        kwargs.setdefault("duration", 1.0)
        return cls.from_df(df, path=path, fn_col="fname", label_col="label", valid_col="is_valid", **kwargs)

    @classmethod
    def from_irmas(cls, train, test, **kwargs) -> AudioDataLoaders:
        """IRMAS, multi-label: trained on the 3 s training excerpts (one predominant instrument each, from its
        folder) and validated on the testing pieces (every predominant instrument, from their ``.txt``), the
        data set's own protocol. Targets are ``MultiCategoryBlock`` one-hot rows over the 11 instruments
        (``audio_learner`` then uses a sigmoid per class); validation sees the centre ``duration`` (3.0 s unless
        given) of each piece, so score whole pieces with ``predict_windows``.

        Examples:
            >>> dls = AudioDataLoaders.from_irmas("IRMAS-TrainingData", "IRMAS-TestingData")   # doctest: +SKIP
            >>> dls.vocab                                                                      # doctest: +SKIP
            ['cel', 'cla', 'flu', 'gac', 'gel', 'org', 'pia', 'sax', 'tru', 'vio', 'voi']
        """
        from ..datasets.irmas import read_irmas

        df = read_irmas(train, test).assign(is_valid=lambda d: d["split"] == "test")
        kwargs.setdefault("duration", 3.0)
        return cls.from_df(
            df, path="/", fn_col="fname", label_col="labels", valid_col="is_valid", label_delim=" ", **kwargs
        )

    @classmethod
    def from_hf(
        cls,
        dataset,
        label: str = "label",
        *,
        audio: str | None = None,
        train: str = "train",
        valid: str | None = "validation",
        valid_pct: float = 0.2,
        seed: int | None = None,
        **kwargs,
    ) -> AudioDataLoaders:
        """A Hugging Face dataset (``datasets.load_dataset(...)``, ``load_from_disk``, or one built locally) with an
        ``Audio`` column, decoded by the library's own decoder: ``datasets`` and its torchcodec decoding are not
        used for the audio, and no audio is read until a batch needs it (``read_hf``).

        A ``DatasetDict`` trains on its ``train`` split and validates on its ``valid`` split (``valid=None``: a random
        ``valid_pct`` of ``train``); a single ``Dataset`` is split at random. A ``ClassLabel`` column keeps the
        dataset's ids as the model's classes (``dls.vocab`` is its ``names``); a list of ``ClassLabel`` s makes a
        multi-label task (``MultiCategoryBlock``). The ``Audio`` column's ``sampling_rate``, when it has one, is the
        default ``sample_rate``; other arguments are ``from_df``'s (``duration``, ``bs``, ``batch_tfms``...).

        Raises:
            ImportError: ``datasets`` is not installed (``pip install 'fastai_audio[hf]'``).
            ParameterError: a missing split or column, a streaming dataset, training rows without a label.

        Examples:
            >>> dls = AudioDataLoaders.from_hf(hf_dataset, valid=None, duration=1.0, bs=2, seed=0)
            >>> dls.vocab, len(dls.train_ds), len(dls.valid_ds), dls.one_batch()[0].shape
            (['high', 'low'], 7, 1, torch.Size([2, 1, 16000]))
        """
        from ..datasets.hf import _audio_column, _check_dataset, _label_info, _require_datasets, read_hf

        datasets = _require_datasets()
        if isinstance(dataset, datasets.Dataset):  # (its rows are named after its own split, when it has one)
            train, valid = str(dataset.split) if dataset.split is not None else train, None
            parts = {train: dataset}
        else:
            _check_dataset(dataset)
            for split, what in ((train, "train"), (valid, "valid")):
                if split is not None and split not in dataset:
                    fix = "" if what == "train" else f", or valid=None to hold out valid_pct of {train!r}"
                    raise ParameterError(
                        f"the DatasetDict has no split {split!r} (its splits: {list(dataset)}); pass "
                        f"{what}='<split>'{fix}"
                    )
            parts = {train: dataset[train], **({valid: dataset[valid]} if valid is not None else {})}
        df = read_hf(parts, label, audio=audio)
        unlabelled = df[df["label"].isna()]
        if len(unlabelled):
            raise ParameterError(
                f"{len(unlabelled)} rows have no label (ClassLabel id -1), the first {unlabelled.audio.iloc[0]}: "
                "an unlabelled split (e.g. a hidden test set) cannot train or validate; filter them out first"
            )
        first = parts[train]
        vocab, multi = _label_info(first, label)
        rate = getattr(first.features[_audio_column(first, audio)], "sampling_rate", None)
        if rate:
            kwargs.setdefault("sample_rate", rate)
        split = {} if valid is None else {"valid_col": "is_valid"}
        return cls.from_df(
            df.assign(is_valid=df["split"] == valid),
            fn_col="audio",
            label_col="label",
            valid_pct=valid_pct,
            seed=seed,
            label_delim=" " if multi else None,
            vocab=vocab,
            sort_vocab=False,  # (ClassLabel ids are the model's classes)
            **split,
            **kwargs,
        )

    @classmethod
    def from_packed(
        cls, dest, *, duration: float | None | object = ..., pad_mode: str = "zeros", path=None, **kwargs
    ) -> AudioDataLoaders:
        """The packed cache in ``dest`` (``fastai-audio pack`` / :func:`~fastai_audio.data.pack.pack`): the same
        clips, labels and split as the loaders it was packed from, read from one memory-mapped file per split.

        A batch is then a copy out of a memory map, with nothing to open or decode: several times faster than from
        the files, with or without workers. Random crops still change every epoch (whole clips are stored).
        Everything else is as with the file loaders: ``batch_tfms``, ``item_tfms``, ``show_batch``, ``test_dl``
        (on files), export and ``predict``.

        Args:
            dest: the cache's folder (or its ``packed.json``).
            duration: seconds per clip (default: the packed loaders'); ``None`` for whole clips.
            pad_mode: ``'zeros'``, ``'repeat'`` or ``'error'`` for clips shorter than ``duration``.
            path: folder for exports and the Learner's files (default: ``dest``).
            **kwargs: ``bs``, ``num_workers``, ``item_tfms``, ``batch_tfms``, ``device``... as for every
                constructor. The sample rate and channels are the cache's.

        Raises:
            AudioFileError: no cache in ``dest``, or one whose index does not match its data.

        Examples:
            >>> index = pack(AudioDataLoaders.from_folder("data", bs=4), "packed_for_loaders", progress=False)
            >>> dls = AudioDataLoaders.from_packed("packed_for_loaders", bs=4, duration=1.0)
            >>> dls.vocab, dls.one_batch()[0].shape
            (['high', 'low'], torch.Size([4, 1, 16000]))
        """
        from ..packed import PackedClip, read_packed_index

        index = read_packed_index(dest)
        folder = Path(dest) if Path(dest).is_dir() else Path(dest).parent
        for key in ("sample_rate", "mono"):
            if key in kwargs:
                raise ParameterError(
                    f"{key} is the packed cache's ({index['audio_config'][key]!r}); pack the files "
                    f"again for another {key.replace('_', ' ')}"
                )
        packed = index["audio_config"]
        items, split = [], {"train": [], "valid": []}
        for name in ("train", "valid"):
            entry = index["splits"].get(name)
            if entry is None:
                raise AudioFileError(folder, f"the packed cache has no {name} set; pack loaders with both sets")
            file = folder / entry["file"]
            for offset, length, label, source in entry["clips"]:
                split[name].append(len(items))
                items.append([PackedClip(file, offset, length, index["channels"], index["dtype"], source), label])
        multi = index.get("multi_label", False)
        return cls._from_block(
            items,
            path if path is not None else folder,
            get_x=_Field(0),
            get_y=_Field(1),
            splitter=_FixedSplit(split["train"], split["valid"]),
            vocab=index["classes"],
            label_delim="," if multi else None,
            sample_rate=packed["sample_rate"],
            mono=packed["mono"],
            duration=packed["duration"] if duration is ... else duration,
            pad_mode=pad_mode,
            **kwargs,
        )

    @classmethod
    def from_shards(
        cls,
        train,
        valid=None,
        *,
        index=None,
        path=".",
        epoch_size: int | None = None,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        allow_partial: bool = False,
        sample_rate=16000,
        duration=4.0,
        mono=True,
        pad_mode="zeros",
        item_tfms=None,
        batch_tfms=None,
        bs: int = 64,
        val_bs: int | None = None,
        num_workers: int = 0,
        device=None,
        **kwargs,
    ) -> AudioDataLoaders:
        """Stream WebDataset tar shards written by ``write_shards`` / ``fastai-audio shard``.

        Same item transforms (decode with soundfile, downmix, resample, crop), batch transforms, ``show_batch``,
        ``test_dl``, export and ``predict`` as the file-based constructors; what differs is how items are read (see
        :mod:`fastai_audio.data.shards`): training resamples shards through a shuffle buffer for ``epoch_size``
        samples an epoch (default: the index's training count), seeded by ``seed`` and the epoch; validation is an
        exact pass. Under ``torchrun`` every rank streams its own share and yields the same number of training
        batches.

        Args:
            train: training shard URLs: a path, a brace pattern (``'train-{000000..000127}.tar'``), an
                ``http(s)://`` URL, a ``pipe:`` command (``'pipe:aws s3 cp s3://bucket/train-000001.tar -'``), or a
                list of them.
            valid: validation shard URLs; default: the index's validation shards beside it.
            index: the ``index.json`` (path or URL); default: ``index.json`` beside the first training shard. It
                gives the classes and the sample counts, so nothing is read to learn them.
            path: folder for exports and the Learner's files.
            epoch_size: training samples per epoch over all ranks.
            shuffle_buffer: samples held to shuffle the training stream.
            seed: seed of the training stream (with the epoch, the rank and the worker).
            sample_rate: as ``AudioBlock``.
            duration: as ``AudioBlock``.
            mono: as ``AudioBlock``.
            pad_mode: as ``AudioBlock``.
            item_tfms: as ``DataBlock``.
            batch_tfms: as ``DataBlock`` (e.g. ``mel_transforms('nsynth')``).
            bs: batch size (per rank).
            val_bs: validation batch size (default ``bs``).
            num_workers: loader processes per rank.
            device: where batches go.
            allow_partial: accept a validation pass that read fewer samples than the index counts (a shard missing
                or broken), with a warning giving the counts; by default that is an error, since metrics computed on
                part of the validation set are not the ones asked for.

        Examples:
            >>> dls = AudioDataLoaders.from_shards("shards/train-{000000..000001}.tar", index="shards/index.json",
            ...                                    duration=1.0, bs=4)
            >>> dls.vocab, dls.one_batch()[0].shape
            (['high', 'low'], torch.Size([4, 1, 16000]))
        """
        from .shards import (
            INDEX_NAME,
            ShardDL,
            ShardStream,
            check_shard_args,
            expand_urls,
            read_shard_index,
            shard_template,
        )

        check_shard_args(epoch_size, shuffle_buffer)
        train_urls = expand_urls(train)
        if not train_urls:
            raise ParameterError(f"no training shards in {train!r}: pass shard paths, a brace pattern or URLs")
        base = train_urls[0].rsplit("/", 1)[0] if "/" in train_urls[0] else "."
        info = read_shard_index(index if index is not None else f"{base}/{INDEX_NAME}")
        by_name = {s["name"]: s["n"] for split in info["splits"].values() for s in split["shards"]}
        listed = info["splits"].get("valid", {}).get("shards", [])
        valid_urls = expand_urls(valid) if valid is not None else [f"{base}/{s['name']}" for s in listed]
        if not valid_urls:
            raise ParameterError("no validation shards: pass valid=<urls>, or an index that lists some")
        counts = []
        for urls in (train_urls, valid_urls):
            names = [u.rstrip("/").rsplit("/", 1)[-1] for u in urls]
            missing = [n for n in names if n not in by_name]
            if missing:
                raise ParameterError(
                    f"shards not in the index {index or base + '/' + INDEX_NAME}: {missing[:3]}; "
                    "pass the index.json written with them (index=...)"
                )
            counts.append([by_name[n] for n in names])
        if not sum(counts[0]) or not sum(counts[1]):
            raise ParameterError("the index counts no samples in the training or validation shards")
        block_kwargs, template = shard_template(
            info["classes"],
            multi_label=info.get("multi_label", False),
            sample_rate=sample_rate,
            duration=duration,
            mono=mono,
            pad_mode=pad_mode,
        )
        dl_kwargs = {
            **block_kwargs,
            "after_item": list(item_tfms or []),
            "after_batch": list(batch_tfms or []),
            "num_workers": num_workers,
            "device": device,
            **kwargs,
        }
        train_dl = ShardDL(
            ShardStream(
                train_urls, counts[0], template.subset(0), train=True, seed=seed, shuffle_buffer=shuffle_buffer
            ),
            exact=False,
            epoch_size=epoch_size,
            bs=bs,
            **dl_kwargs,
        )
        valid_dl = train_dl.new(
            ShardStream(valid_urls, counts[1], template.subset(1), train=False),
            exact=True,
            bs=val_bs or bs,
            drop_last=False,
            allow_partial=allow_partial,
        )
        dls = cls(train_dl, valid_dl, path=path, device=device)
        return dls


def _check_folder_split(path: Path, train: str, valid: str, files, labels_from_folders: bool):
    """A folder split that would train or validate on nothing is an error naming the folder it expected; with labels
    from the class folders, a validation class never trained on is an error and a class missing from validation (or
    an empty class folder) a warning."""
    split = {name: [f for f in files if in_folder(f, path / name)] for name in (train, valid)}
    subfolders = sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
    for name, arg, other in ((train, "train", valid), (valid, "valid", train)):
        if not split[name]:
            raise ParameterError(
                f"no audio files in {path / name}, the {'training' if arg == 'train' else 'validation'} folder "
                f"({len(split[other])} in {path / other}); the sub-folders of {path} are {subfolders}: pass "
                f"{arg}='<folder name>', or valid_pct=0.2 to split every file at random"
            )
    if not labels_from_folders:
        return
    classes = {name: {f.parent.name for f in split[name]} for name in (train, valid)}
    unknown = sorted(classes[valid] - classes[train])
    if unknown:
        raise ParameterError(
            f"validation classes with no training files: {unknown} (in {path / valid}, expected in {path / train} "
            "too); add training files for them, or move those folders out of the validation set"
        )
    missing = sorted(classes[train] - classes[valid])
    if missing:
        warnings.warn(
            f"no validation files for the classes {missing} (expected in {path / valid}/<class>): "
            "their accuracy is not measured",
            stacklevel=3,
        )
    for name in (train, valid):
        if (path / name).is_dir():
            empty = sorted(
                d.name
                for d in (path / name).iterdir()
                if d.is_dir() and d.name not in classes[name] and not d.name.startswith(".")
            )
            if empty:
                warnings.warn(
                    f"{path / name} has class folders holding no audio files: {empty}; those classes are left out",
                    stacklevel=3,
                )


class _InFolder:
    """Picklable ``Path -> bool``: is the file inside ``folder``? Paths are compared as given, not with their links
    resolved, so a split made of symbolic links keeps its folders."""

    def __init__(self, folder):
        self.folder = absolute(folder)

    def __call__(self, o) -> bool:
        return self.folder in absolute(o).parents


class _Field(DirectEncodes, DisplayedTransform):
    """Picklable ``item -> item[i]`` for the loaders' ``[file, label]`` items."""

    def __init__(self, i: int):
        super().__init__()
        self.i = i

    def encodes(self, o):
        return o[self.i]


# the label transform of loaders made before it moved to data/items.py (pickled learners name it here)
_Categorize = FastCategorize


class _FixedSplit:
    """Picklable splitter returning fixed training and validation indices."""

    def __init__(self, train_idx: list, valid_idx: list):
        self.train_idx, self.valid_idx = train_idx, valid_idx

    def __call__(self, items) -> tuple[list, list]:
        return self.train_idx, self.valid_idx
