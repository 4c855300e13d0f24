"""The seam to the frameworks (fastai_audio._compat): every probe passes on the installed versions, a moved internal
is named and falls back to the public path, the fast paths give the public paths' results, no framework-private name
is used outside the seam, and importing fastai_audio changes nothing of fastai's."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from conftest import assert_same_batches
from fastai.torch_core import set_seed

import fastai_audio
from fastai_audio import _compat
from fastai_audio._compat import SHIMS, FrameworkChangedWarning, check_framework, use_shims
from fastai_audio.data import AudioDataLoaders
from fastai_audio.learner import audio_learner
from fastai_audio.transforms import AmplitudeToDB, MelSpectrogram, SpecNormalize

PACKAGE = Path(fastai_audio.__file__).parent
PRIVATE_OWNERS = ("fastai", "fastcore", "fasttransform", "plum", "torch")


def test_every_probe_passes_on_the_installed_frameworks():
    problems = check_framework()
    assert not problems, "framework internals that fastai_audio relies on have moved:\n" + "\n".join(problems)
    assert all(shim.on for shim in SHIMS.values()), {n: s.broken for n, s in SHIMS.items() if not s.on}


def test_every_shim_says_what_it_replaces_its_gain_and_its_fallback():
    assert set(SHIMS) == {"direct_encodes", "item_maker", "predict_direct"}
    for shim in SHIMS.values():
        assert len(shim.replaces) > 40 and len(shim.fallback) > 20, shim.name
        assert any(c.isdigit() for c in shim.gain), f"{shim.name}: the gain must be a measured number"


def test_a_moved_internal_is_named_and_its_shim_falls_back(monkeypatch, toy_folder):
    import fasttransform

    original = fasttransform.Transform._do_call

    def _do_call(self, fn, *args, **kwargs):  # a fasttransform release that renamed an argument
        return original(self, fn, *args, **kwargs)

    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=0.5, num_workers=0)
    expected = dls.valid.one_batch()
    monkeypatch.setattr(fasttransform.Transform, "_do_call", _do_call)
    moved = r"'direct_encodes' is off: fasttransform\.Transform\._do_call now takes \['self', 'fn'"
    with pytest.warns(FrameworkChangedWarning, match=moved):
        _compat._probe_shims()
    try:
        assert not SHIMS["direct_encodes"].on and SHIMS["item_maker"].on
        problems = check_framework()
        assert len(problems) == 1 and problems[0].startswith("shim 'direct_encodes': fasttransform.Transform._do_call")
        assert "fallback is fasttransform's own call path" in problems[0]
        with use_shims(True):  # a broken shim stays off even when asked for
            assert not SHIMS["direct_encodes"].on
    finally:
        monkeypatch.undo()
        _compat._probe_shims()
    assert SHIMS["direct_encodes"].on
    assert torch.equal(dls.valid.one_batch()[0], expected[0])


def test_the_environment_switches_shims_off():
    code = "from fastai_audio._compat import SHIMS; import json; print(json.dumps({n: s.on for n, s in SHIMS.items()}))"
    for value, off in (("off", set(SHIMS)), ("item_maker, predict_direct", {"item_maker", "predict_direct"})):
        env = {**os.environ, "FASTAI_AUDIO_SHIMS": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
        assert {n for n, on in json.loads(out).items() if not on} == off


def _epoch(dl, seed: int):
    set_seed(seed)
    dl.rng.seed(seed)
    for t in dl.after_batch.fs:
        if hasattr(t, "_generators"):
            t._generators.clear()
    return [tuple(o.clone() for o in b) for b in dl]


def test_the_public_paths_give_the_shims_results(aug_dls):
    """Training batches (random crops, augmentation, masks), validation batches and predictions: identical with every
    shim on and with fastai's public paths only."""
    fast = [_epoch(aug_dls.train, 1), _epoch(aug_dls.valid, 2)]
    with use_shims(False):
        assert not any(s.on for s in SHIMS.values())
        public = [_epoch(aug_dls.train, 1), _epoch(aug_dls.valid, 2)]
    for got, want in zip(fast, public):
        assert_same_batches(got, want)


def test_predict_direct_gives_learner_predicts_result(aug_dls, toy_folder):
    learn = audio_learner(aug_dls, pretrained=False)
    f = sorted((toy_folder / "valid").rglob("*.wav"))[0]
    with use_shims(False, ["predict_direct"]):
        label, index, probs = learn.predict(f)
    fast = learn.predict(f)
    assert fast[0] == label and int(fast[1]) == int(index) and torch.allclose(fast[2], probs, atol=1e-6)


def _private_uses(path: Path) -> list[str]:
    """Framework-private names used in a module: imported underscore names, ``torch._C``, fastai's ``fake_l``,
    fasttransform's ``_call``/``_do_call`` overridden, ``TfmdLists._after_item`` read, a ``Datasets``' ``tls``
    (its lists' layout) read."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PRIVATE_OWNERS:
            found += [f"from {node.module} import {a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr in ("_C", "fake_l", "_after_item", "_opt", "tls"):
            found.append(f".{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.FunctionDef) and node.name in ("_call", "_do_call", "_resolve_method_with_cache"):
            found.append(f"def {node.name} (line {node.lineno})")
    return found


def test_no_framework_private_name_outside_the_seam():
    uses = {str(p.relative_to(PACKAGE)): _private_uses(p) for p in sorted(PACKAGE.rglob("*.py"))}
    assert uses.pop("_compat.py"), "the seam itself uses them (the scan must find something to be trusted)"
    outside = {name: found for name, found in uses.items() if found}
    assert not outside, f"framework-private names outside fastai_audio/_compat.py: {outside}"


def _inherited_private_uses(source: str, classes: dict) -> list[str]:
    """In each class of ``source`` (``classes``: its name -> the class object) that derives from a framework class:
    ``self._x``, ``super()._x`` and ``Base._x`` where ``_x`` is defined by a framework base (a private method or
    property inherited from fastai, torch...) and by none of the package's own classes."""
    import inspect

    found = []
    for node in ast.walk(ast.parse(source)):
        cls = classes.get(node.name) if isinstance(node, ast.ClassDef) else None
        if not inspect.isclass(cls):
            continue
        framework = {
            n
            for b in cls.__mro__[1:]
            if b.__module__.split(".")[0] in PRIVATE_OWNERS
            for n in vars(b)
            if n.startswith("_") and not n.startswith("__")
        }
        own = {n for b in cls.__mro__ if b.__module__.startswith("fastai_audio") for n in vars(b)}
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and sub.attr in framework - own:
                base = sub.value
                is_self = isinstance(base, ast.Name) and base.id in ("self", "cls")
                is_super = isinstance(base, ast.Call) and getattr(base.func, "id", None) == "super"
                is_class = isinstance(base, ast.Name) and base.id[:1].isupper()
                if is_self or is_super or is_class:
                    found.append(f"{node.name}: {ast.unparse(sub)} (line {sub.lineno})")
    return found


def test_no_private_method_inherited_from_a_framework_is_used_outside_the_seam():
    import importlib

    uses = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(("fastai_audio", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        if path.name == "__main__.py" or path.name == "_compat.py":
            continue
        module = importlib.import_module(name)
        uses[name] = _inherited_private_uses(path.read_text(), vars(module))
    outside = {name: found for name, found in uses.items() if found}
    assert not outside, f"private framework methods used outside fastai_audio/_compat.py: {outside}"
    # the scan sees what it looks for: a subclass of fastai's SaveModelCallback calling its private _save
    from fastai.callback.tracker import SaveModelCallback

    source = "class Keep(SaveModelCallback):\n    def after_epoch(self):\n        self._save('best')\n"
    probe = type("Keep", (SaveModelCallback,), {"__module__": "fastai_audio.probe"})
    assert _inherited_private_uses(source, {"Keep": probe}) == ["Keep: self._save (line 3)"]


SNAPSHOT = """
import importlib, json, pkgutil, sys, warnings
warnings.simplefilter("ignore")
import fastai
mods = ["fastai.basics", "fastai.callback.all", "fastai.interpret", "fastai.vision.all", "fastai.data.all",
        "fastai.learner", "fastai.torch_core", "fasttransform"]
for m in mods:
    importlib.import_module(m)
def snap():
    out = {}
    for name, mod in list(sys.modules.items()):
        if not name.startswith(("fastai.", "fasttransform", "fastcore")) or mod is None:
            continue
        for attr, cls in list(vars(mod).items()):
            if isinstance(cls, type) and cls.__module__ == name:
                out[f"{name}.{attr}"] = sorted(f"{k}:{id(v)}" for k, v in vars(cls).items())
    out["torch.Tensor"] = sorted(f"{k}:{id(v)}" for k, v in vars(__import__("torch").Tensor).items())
    return out
before = snap()
exec("from fastai_audio.all import *")
after = snap()
print(json.dumps(sorted(k for k in before if before[k] != after.get(k))))
"""


def test_importing_fastai_audio_changes_no_fastai_class():
    out = subprocess.run([sys.executable, "-c", SNAPSHOT], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.splitlines()[-1]) == []


def test_star_import_keeps_fastais_names():
    fastai_ns, audio_ns = {}, {}
    for module in ("fastai.basics", "fastai.callback.all", "fastai.interpret"):
        exec(f"from {module} import *", fastai_ns)  # noqa: S102
    exec("from fastai_audio.all import *", audio_ns)  # noqa: S102
    replaced = [k for k, v in fastai_ns.items() if not k.startswith("__") and audio_ns.get(k) is not v]
    assert replaced == []
    from fastai.data.transforms import Normalize

    assert audio_ns["Normalize"] is Normalize and audio_ns["SpecNormalize"] is SpecNormalize


@pytest.mark.parametrize(
    "module",
    [
        "fastai_audio.data",
        "fastai_audio.transforms",
        "fastai_audio.core",
        "fastai_audio.learner",
        "fastai_audio.inference",
        "fastai_audio.all",
    ],
)
def test_importing_any_module_is_quiet(module):
    """fastai's import-time FutureWarning (torch.jit.script, from fastai.layers) is not the user's to see."""
    run = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", f"import {module}"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_mix_handler_contract(toy_folder):
    """AudioCutMix follows fastai's MixHandler protocol: it sets ``lam`` and ``yb1`` and MixHandler's loss mixes the
    two targets' losses by ``lam``."""
    from fastai.callback.mixup import MixHandler

    class Fixed(MixHandler):
        def before_batch(self):
            self.lam = torch.tensor(0.25)
            self.yb1 = tuple(y.flip(0) for y in self.yb)

    dls = AudioDataLoaders.from_folder(
        toy_folder,
        bs=4,
        duration=0.5,
        num_workers=0,
        batch_tfms=[MelSpectrogram(n_mels=16, n_fft=256), AmplitudeToDB()],
    )
    learn = audio_learner(dls, pretrained=False)
    cb = Fixed()
    learn.add_cb(cb)
    xb, yb = (o.as_subclass(torch.Tensor) for o in dls.one_batch())
    learn.xb, learn.yb = (xb,), (yb,)
    learn.training = True
    cb.before_train()
    cb.before_batch()
    with torch.no_grad():
        pred = learn.model(xb)
    base = torch.nn.functional.cross_entropy
    want = 0.75 * base(pred, yb.flip(0)) + 0.25 * base(pred, yb)
    got = learn.loss_func(pred, yb)
    cb.after_train()
    learn.remove_cb(cb)
    assert torch.allclose(got, want, atol=1e-6)


def test_framework_warning_is_a_user_warning():
    assert issubclass(FrameworkChangedWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _compat._probe_shims()  # nothing moved: no warning


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_transform_of_the_package_takes_the_direct_path():
    """A transform whose ``encodes`` plum cannot hand to the shim (typed methods it cannot see past) silently falls
    back to the slow path: fastai.tabular, for one, registers a second ``Categorize.encodes``."""
    import fastai.tabular.all  # noqa: F401  (registers its Categorize method, as a notebook's imports may)

    from fastai_audio._compat import DirectEncodes, _single_encodes

    classes = [c for c in _subclasses(DirectEncodes) if c.__module__.startswith("fastai_audio.")]
    assert len(classes) > 20
    slow = [c.__qualname__ for c in classes if _single_encodes(c) is None]
    assert not slow, f"these transforms take fasttransform's slow path: {slow}"


def test_the_dispatch_contract_checks_the_types_handed_to_the_seam(monkeypatch):
    """The seam imports nothing of the package: interpret.py hands it the audio type, and a type whose plot methods
    fastai does not dispatch is reported."""
    import fastai_audio.interpret  # noqa: F401  (registers TensorAudio's methods and hands the type over)
    from fastai_audio.core import TensorAudio

    assert TensorAudio in _compat._DISPATCHED and check_framework() == []

    class Unregistered(torch.Tensor):
        pass

    monkeypatch.setattr(_compat, "_DISPATCHED", [Unregistered])
    problems = check_framework()
    assert len(problems) == 3 and all("contract 'type_dispatch'" in p and "not registered" in p for p in problems)
