"""The seam: every place where fastai_audio depends on a framework internal lives in this module.

fastai_audio steps around fastai where fastai is slow, and each such step depends on something the frameworks do not
promise to keep (a private method, a private class, the layout of an object). Those dependencies are all here, so
that a framework release breaks this file and nothing else, and ``check_framework()`` says which entry broke.

There are two kinds of entries.

**Shims** are fast paths. Each one names what it replaces, the gain measured for it (``bench/seam.py`` measures
every shim against its fallback in the same run; the numbers are in docs/performance.md), and the public fallback,
which gives the same results, only slower. A shim is switched off

- by its probe, at import, when the internal it needs has moved (with a ``FrameworkChangedWarning`` naming it);
- for the whole process with the environment variable ``FASTAI_AUDIO_SHIMS=off`` (or a comma-separated list of
  shim names), e.g. to rule the shims out when reporting a bug;
- in code with ``use_shims(False)`` (a context manager, used by the tests and the benchmark).

**Contracts** are framework behaviour that fastai_audio relies on without a fallback: fastai's plum-dispatched
``show_batch`` / ``show_results`` / ``plot_top_losses`` functions, which the audio types extend; ``MixHandler``'s
protocol, which ``AudioCutMix`` follows; and the layout of a ``Datasets`` (``tls[i].tfms.fs``), where the audio
opener is found. ``check_framework()`` probes them too.

Everything else in the package uses public APIs only. A fast path that stops paying its way is deleted here, not
patched elsewhere.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

with warnings.catch_warnings():
    # fastai 2.8's layers module calls torch.jit.script at import time, which torch >= 2.10 deprecates; the warning
    # is about fastai's code, not the user's, so it is silenced for this one import.
    warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
    import fastai.torch_basics  # noqa: F401

import torch
from fastai.data.core import Datasets, TfmdLists
from fastai.data.load import DataLoader, SkipItemException
from fastai.torch_core import getcallable, to_device
from fastcore.foundation import L
from fasttransform import Pipeline, Transform, compose_tfms

__all__ = [
    "DirectEncodes",
    "FrameworkChangedWarning",
    "Shim",
    "SHIMS",
    "check_framework",
    "dataset_pipelines",
    "in_main_process",
    "input_item",
    "input_pipeline",
    "item_maker",
    "predict_direct",
    "use_shims",
]


class FrameworkChangedWarning(UserWarning):
    """A framework internal that a fast path of fastai_audio relies on has moved; the public path is used instead."""


@dataclass
class Shim:
    """A fast path around a framework: what it ``replaces``, its measured ``gain``, its public ``fallback``."""

    name: str
    replaces: str
    gain: str
    fallback: str
    probe: Callable[[], str | None]
    on: bool = True
    broken: str | None = None  # what the probe found, when it failed

    def __bool__(self) -> bool:
        return self.on


SHIMS: dict[str, Shim] = {}


def _register(shim: Shim) -> Shim:
    """Add ``shim`` to ``SHIMS`` (the registry ``check_framework`` and ``use_shims`` go through) and return it."""
    SHIMS[shim.name] = shim
    return shim


def _is_tuple(x) -> bool:
    """fasttransform's rule: a tuple (not a named tuple) is a sample whose elements are transformed one by one."""
    return isinstance(x, tuple) and not hasattr(x, "_fields")


def _signature_names(f) -> list[str]:
    return list(inspect.signature(f).parameters)


# ---------------------------------------------------------------------------------------------------------------------
# Shim: direct_encodes
# ---------------------------------------------------------------------------------------------------------------------


def _probe_direct_encodes() -> str | None:
    for name, expected in (
        ("_call", ["self", "nm", "args", "split_idx", "kwargs"]),
        ("_do_call", ["self", "nm", "args", "kwargs"]),
    ):
        f = getattr(Transform, name, None)
        if f is None:
            return f"fasttransform.Transform.{name} is gone"
        if _signature_names(f) != expected:
            return f"fasttransform.Transform.{name} now takes {_signature_names(f)}, not {expected}"

    class _Probe(Transform):
        def encodes(self, x):
            return x

    if _single_encodes(_Probe) is None:
        return "a Transform's `encodes` is no longer a plum Function whose one method is found in `.methods`"
    return None


DIRECT_ENCODES = Shim(
    "direct_encodes",
    replaces="fasttransform's Transform._call / Transform._do_call for `encodes`: the hasattr check (plum builds a "
    "bound dispatcher on every attribute access), plum's method resolution, and retain_type, which changes nothing "
    "for these transforms (their results are never a superclass of their input)",
    gain="~3.3 us per transform call (3.8 -> 0.45 us): without it a loader with no worker runs at 0.92 of its speed "
    "(its labels and readers still go through transforms), one with an item transform at 0.86 (bench/seam.py, "
    "2-core CPU, 2026-12-04)",
    fallback="fasttransform's own call path: the same `encodes` method, found by plum",
    probe=_probe_direct_encodes,
)
_register(DIRECT_ENCODES)


_IMPLS: dict[type, tuple | None] = {}


def _single_encodes(cls: type) -> tuple | None:
    """``(implementation, other_types)``: the untyped ``encodes`` method of ``cls`` and the input types that other
    ``encodes`` methods registered on it (by fastai's modules, e.g. ``Categorize`` for tabular data) claim. ``None``
    when ``cls`` has no untyped method, or another method's type is not a plain class (plum then decides)."""
    try:
        return _IMPLS[cls]
    except KeyError:
        pass
    found, others = None, []
    methods = getattr(getattr(cls, "encodes", None), "methods", None) or []
    for method in methods:
        types = method.signature.types
        if all(t in (Any, object) for t in types):
            found = method.implementation
        elif len(types) == 2 and isinstance(types[1], type):
            others.append(types[1])
        else:
            found = None
            break
    _IMPLS[cls] = (found, tuple(others)) if found is not None else None
    return _IMPLS[cls]


class DirectEncodes:
    """Mixin for fasttransform ``Transform``s whose ``encodes`` is one untyped method (it checks types itself).

    With the ``direct_encodes`` shim on, calling the transform calls that method directly; otherwise, and for
    decoding, tuples and inputs that a typed ``encodes`` method registered elsewhere claims, fasttransform's path
    runs. Both give the same result (tests/test_compat.py checks it on every transform of the package).
    """

    def _call(self, nm, *args, split_idx=None, **kwargs):
        if nm == "encodes" and DIRECT_ENCODES.on:  # fasttransform's own check, without its `hasattr` on plum
            if self.split_idx is not None and split_idx != self.split_idx:
                return args[0]
            return self._do_call(nm, *args, **kwargs)
        return super()._call(nm, *args, split_idx=split_idx, **kwargs)

    def _do_call(self, nm, *args, **kwargs):
        x = args[0]
        if nm == "encodes" and DIRECT_ENCODES.on and not _is_tuple(x) and "encodes" not in self.__dict__:
            direct = _single_encodes(type(self))
            if direct is not None and not isinstance(x, direct[1]):
                return direct[0](self, *args, **kwargs)
        return super()._do_call(nm, *args, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Shim: item_maker
# ---------------------------------------------------------------------------------------------------------------------

_ITEM_METHODS = ("create_item", "do_item")  # the DataLoader steps that item_maker unrolls


def _probe_item_maker() -> str | None:
    for owner, name in (
        (DataLoader, "create_item"),
        (DataLoader, "do_item"),
        (DataLoader, "after_item"),
        (TfmdLists, "_after_item"),
    ):
        if not hasattr(owner, name):
            return f"{owner.__module__}.{owner.__name__}.{name} is gone"
    ds = Datasets([0, 1], tfms=[[_plus_one]])
    tls = getattr(ds, "tls", None)
    if not tls or type(tls[0]) is not TfmdLists or type(tls[0].tfms) is not Pipeline:
        return "a fastai Datasets no longer keeps its items in TfmdLists `tls` with a Pipeline `tfms`"
    if ds[1] != (2,):
        return "a fastai Datasets item is no longer the tuple of its pipelines' results"
    return None


ITEM_MAKER = Shim(
    "item_maker",
    replaces="fastai's per-item path, DataLoader.do_item -> create_item -> Datasets.__getitem__ -> "
    "TfmdLists.__getitem__ -> TfmdLists._after_item: the same pipelines composed directly, without the wrappers",
    gain="3-10 us a clip, where items are made one by one (loaders with item transforms; the default loader fills "
    "whole batches without it): without it such a loader with no worker runs at 0.95 of its speed (bench/seam.py, "
    "2-core CPU, 2026-12-04); the first shim to delete if fastai's per-item path gets cheaper",
    fallback="fastai's DataLoader.do_item",
    probe=_probe_item_maker,
)
_register(ITEM_MAKER)


def _plus_one(o):
    return o + 1


def item_maker(dl) -> Callable | None:
    """``i -> dl.do_item(i)``, unrolled: the item is ``after_item(tuple(tl.tfms(tl.items[i]) for tl in
    dataset.tls))``, which is what fastai's ``do_item``, ``create_item``, ``Datasets.__getitem__`` and
    ``TfmdLists.__getitem__`` compute, one call inside the other. ``None`` (use fastai's own path) when the shim is
    off, when one of those steps is replaced by a subclass or an argument, or when the dataset is not indexed."""
    ds = dl.dataset
    if not ITEM_MAKER.on or not dl.indexed or type(ds) is not Datasets:
        return None
    if any(n in dl.__dict__ or getattr(type(dl), n) is not getattr(DataLoader, n) for n in _ITEM_METHODS):
        return None
    pipes = dataset_pipelines(ds)
    if pipes is None:
        return None
    after_item = dl.after_item

    def make(i):
        try:
            return after_item(tuple(compose_tfms(items[i], fs, split_idx=split_idx) for items, fs, split_idx in pipes))
        except SkipItemException:
            return None

    return make


# ---------------------------------------------------------------------------------------------------------------------
# Iterating in the main process
# ---------------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def in_main_process(dl):
    """Iterate ``dl`` in the main process within the block (set-up that reads a few batches): an ``AudioDL``'s own
    ``main_process()``; other loaders iterate as configured."""
    own = getattr(dl, "main_process", None)
    with own() if own is not None else contextlib.nullcontext():
        yield dl


# ---------------------------------------------------------------------------------------------------------------------
# Shim: predict_direct
# ---------------------------------------------------------------------------------------------------------------------


def _probe_predict_direct() -> str | None:
    from fastai.learner import Learner

    params = _signature_names(Learner.predict)
    if params[:4] != ["self", "item", "rm_type_tfms", "with_input"]:
        return f"fastai's Learner.predict now takes {params}"
    for name in ("after_item", "before_batch", "create_batch", "after_batch"):
        if not hasattr(DataLoader, name):
            return f"fastai's DataLoader.{name} is gone"
    return None


PREDICT_DIRECT = Shim(
    "predict_direct",
    replaces="fastai's Learner.predict, which builds a test DataLoader for the one item and runs get_preds' callback "
    "loop: the validation pipeline is applied to the item directly and the model runs under torch.inference_mode",
    gain="~3-5 ms a call: predict p50 18.4 ms with it, 23.2 ms without (bench/seam.py, 2-core CPU, 2026-12-04; "
    "9.6 and 12.9 ms on 2026-11-27)",
    fallback="fastai's Learner.predict (identical result, tested)",
    probe=_probe_predict_direct,
)
_register(PREDICT_DIRECT)


def predict_direct(learn, item, first_tfm: int = 0):
    """``learn.predict(item)``'s ``(decoded label, label index, probabilities)``, computed by running the
    validation pipeline from its transform ``first_tfm`` on (the ``get_x`` readers before it apply to rows, not to
    an item) and the model directly. The caller checks that no callback could change the result."""
    dl, ds = learn.dls.valid, learn.dls.valid_ds
    x = item
    for t in ds.tls[0].tfms.fs[first_tfm:]:
        x = t(x, split_idx=1)
    batch = dl.create_batch(dl.before_batch([dl.after_item((x,))]))
    if dl.device is not None:
        batch = to_device(batch, dl.device)
    xb = dl.after_batch(batch)[0]
    if isinstance(xb, torch.Tensor) and type(xb) is not torch.Tensor:
        xb = xb.as_subclass(torch.Tensor)  # the model needs no metadata: spare every layer fastai's type hook
    model = learn.model
    training = model.training  # (a trained or loaded model is in eval mode already: switching costs 1 ms)
    if training:
        model.eval()
    try:
        with torch.inference_mode():
            param = next(model.parameters(), None)
            out = model(xb if param is None else xb.to(param.device))
    finally:
        if training:
            model.train()
    preds = getcallable(learn.loss_func, "activation")(out.float().cpu())
    dec_preds = getcallable(learn.loss_func, "decodes")(preds)
    label = ds.tls[1].decode(dec_preds[0]) if len(ds.tls) > 1 else dec_preds[0]
    return label, dec_preds[0], preds[0]


# ---------------------------------------------------------------------------------------------------------------------
# Contract: the layout of a Datasets
# ---------------------------------------------------------------------------------------------------------------------


def input_pipeline(dataset) -> list | None:
    """The transforms of ``dataset``'s first (input) pipeline, in order: ``Datasets.tls[0].tfms.fs``. ``None`` for
    datasets without that layout (not built by fastai's ``Datasets`` or ``DataBlock``)."""
    tls = getattr(dataset, "tls", None)
    if not tls:
        return None
    return list(getattr(getattr(tls[0], "tfms", None), "fs", None) or []) or None


def dataset_pipelines(dataset) -> list | None:
    """``[(items, transforms, split_idx)]``, one per pipeline of a fastai ``Datasets`` (``tls[i].items``,
    ``tls[i].tfms.fs``, ``tls[i].tfms.split_idx``): item ``k`` of pipeline ``j`` is its transforms applied in order
    to ``items[k]``. ``None`` for datasets without that layout, or whose lists replace how an item is made."""
    tls = getattr(dataset, "tls", None)
    if type(dataset) is not Datasets or not tls:
        return None
    if not all(type(tl) is TfmdLists and "_after_item" not in tl.__dict__ and type(tl.tfms) is Pipeline for tl in tls):
        return None
    return [(L(tl.items, use_list=None), list(tl.tfms.fs), tl.tfms.split_idx) for tl in tls]


def target_item(dataset, i: int):
    """Item ``i`` of ``dataset``'s last pipeline (its label as the loaders encode it): ``tls[-1][i]``."""
    return dataset.tls[-1][i]


def input_item(dataset, i: int):
    """Item ``i`` of ``dataset``'s first pipeline before any transform (a path, a row...): ``tls[0].items[i]``."""
    items = dataset.tls[0].items
    return items.iloc[i] if hasattr(items, "iloc") else items[i]


# ---------------------------------------------------------------------------------------------------------------------
# Switches and checks
# ---------------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def use_shims(on: bool = True, names=None):
    """Switch shims on or off within a block (all of them, or those in ``names``); a shim whose probe failed stays
    off.

    Examples:
        >>> with use_shims(False):
        ...     batch = dls.one_batch()     # fastai's public paths only
    """
    chosen = [SHIMS[n] for n in (names or SHIMS)]
    before = [s.on for s in chosen]
    for s in chosen:
        s.on = on and s.broken is None
    try:
        yield
    finally:
        for s, was in zip(chosen, before):
            s.on = was


def _probe_shims():
    """Run every shim's probe once, at import: a shim whose internal moved is switched off, with a warning."""
    off = os.environ.get("FASTAI_AUDIO_SHIMS", "on").strip()
    disabled = set(SHIMS) if off == "off" else {n.strip() for n in off.split(",") if n.strip() in SHIMS}
    for shim in SHIMS.values():
        try:
            shim.broken = shim.probe()
        except Exception as err:  # noqa: BLE001 - any failure of a probe means the internal moved
            shim.broken = f"its probe failed ({type(err).__name__}: {err})"
        shim.on = shim.broken is None and shim.name not in disabled
        if shim.broken is not None:
            warnings.warn(
                f"fastai_audio: the fast path {shim.name!r} is off: {shim.broken}. It replaced {shim.replaces}; "
                f"fastai_audio now uses {shim.fallback} (same results, slower: {shim.gain}). Please report it "
                "with your fastai/fasttransform/torch versions; the fix belongs in fastai_audio/_compat.py",
                FrameworkChangedWarning,
                stacklevel=2,
            )


_probe_shims()


_DISPATCHED: list[type] = []  # the package's types whose plot methods the modules above the seam registered


def expect_dispatch(cls: type):
    """Called by the module that registers the audio methods of fastai's ``show_batch``, ``show_results`` and
    ``plot_top_losses`` (``interpret.py``): ``check_framework`` then checks that fastai still dispatches them for
    ``cls``. The seam imports nothing of the package; what it checks is handed to it."""
    if cls not in _DISPATCHED:
        _DISPATCHED.append(cls)


def _contract_problems() -> list[str]:
    """Probe the contracts (framework behaviour fastai_audio relies on without a fallback)."""
    problems = []
    from fastai.callback.mixup import MixHandler

    for name in ("before_train", "after_train", "lf"):
        if not hasattr(MixHandler, name):
            problems.append(f"contract 'mix_handler': fastai's MixHandler.{name} is gone (AudioCutMix follows it)")
    src = inspect.getsource(MixHandler) if not problems else ""
    for attr in ("self.lam", "self.yb1", "self.stack_y", "self.distrib"):
        if src and attr not in src:
            problems.append(f"contract 'mix_handler': fastai's MixHandler no longer uses {attr} (AudioCutMix sets it)")

    import fastai.data.core
    import fastai.interpret

    functions = (
        (fastai.data.core, "show_batch"),
        (fastai.data.core, "show_results"),
        (fastai.interpret, "plot_top_losses"),
    )
    for (module, name), cls in ((fn, cls) for cls in _DISPATCHED for fn in functions):
        f = getattr(module, name, None)
        methods = getattr(f, "methods", None)
        if methods is None:
            problems.append(
                f"contract 'type_dispatch': {module.__name__}.{name} is no longer a plum Function: the "
                "audio types cannot extend it"
            )
            continue
        firsts = {m.signature.types[0] for m in methods if m.signature.types}
        if not any(_mentions(t, cls) for t in firsts):
            problems.append(
                f"contract 'type_dispatch': the audio method of {module.__name__}.{name} is not "
                "registered: fastai no longer dispatches it with plum's global `dispatch`"
            )

    ds = Datasets([0, 1], tfms=[[_plus_one]])
    if input_pipeline(ds) is None or input_pipeline(ds)[-1](1) != 2:
        problems.append(
            "contract 'datasets_layout': a fastai Datasets no longer keeps its pipelines in "
            "tls[i].tfms.fs: the audio opener is not found (predict, predict_windows, test_dl)"
        )
    return problems


def _mentions(t, cls) -> bool:
    """Whether the plum type ``t`` (a class, or a union of classes) includes ``cls``."""
    if isinstance(t, type):
        return issubclass(t, cls)
    return any(isinstance(a, type) and issubclass(a, cls) for a in getattr(t, "__args__", ()))


def check_framework() -> list[str]:
    """Every moved internal, one line each, naming the shim or contract: ``[]`` when all probes pass.

    A shim's line says what it replaced and what runs instead; a contract's says what stops working.

    Examples:
        >>> check_framework()
        []
    """
    problems = [
        f"shim {s.name!r}: {s.broken} (it replaced {s.replaces}; the fallback is {s.fallback})"
        for s in SHIMS.values()
        if s.broken is not None
    ]
    return problems + _contract_problems()
