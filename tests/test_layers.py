"""The package's layers (docs/architecture.md): each module imports only from the layers below it, so there is no
import cycle and the pure parts (functional, files) stay free of fastai."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fastai_audio

PACKAGE = Path(fastai_audio.__file__).parent

# lower imports nothing above it; modules of one sub-package may import each other
RANK = {
    "errors": 0,
    "_validate": 0.5,
    "atomic": 0.55,
    "decode": 0.6,
    "audio_config": 0.6,
    "packed": 0.6,
    "rates": 0.6,
    "functional": 1,
    "models": 1,
    "_compat": 1,
    "files": 2,
    "runtime": 2.5,
    "serve": 2.55,  # (the runtime's old name: a deprecated alias)
    "server": 2.6,
    "io": 3,
    "core": 4,
    "datasets": 4,
    "transforms": 5,
    "data": 6,
    "interpret": 6,
    "distributed": 6.5,
    "export": 6.8,
    "learner": 7,
    "inference": 8,
    "cli": 9,
    "all": 9,
}
ALLOWED: dict = {}  # imports against the order, made inside a function on purpose (none today)


def _layer(module: str) -> str:
    return module.split(".")[0]


def _imports(path: Path) -> list[tuple[str, int]]:
    """``(module within fastai_audio, line)`` for every relative import of the file, top level or not."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - node.level + 1])
            if node.module:
                found.append((".".join([*base, node.module]), node.lineno))
                continue
            for alias in node.names:  # `from . import x`: a module, or a name from the package's __init__
                folder = PACKAGE.joinpath(*base)
                is_module = (folder / alias.name).is_dir() or (folder / f"{alias.name}.py").is_file()
                found.append((".".join([*base, alias.name] if is_module else base), node.lineno))
    return found


def test_every_module_has_a_layer():
    modules = {_layer(".".join(p.relative_to(PACKAGE).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")}
    assert modules - {"__init__"} <= set(RANK), modules - set(RANK)


def test_imports_go_down_the_layers():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _layer(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        if own == "__init__":
            continue
        for target, line in _imports(path):
            other = _layer(target)
            if other in ("", "__init__") or other == own or (own, other) in ALLOWED:
                continue
            if RANK[other] >= RANK[own]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {target} ({other} is not below {own})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", ["fastai_audio.functional", "fastai_audio.files", "fastai_audio.errors"])
def test_the_pure_layers_load_without_fastai(module):
    code = f"import sys, {module}; print(sorted(m for m in ('fastai', 'fasttransform', 'plum') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ["fastai_audio.decode", "fastai_audio.audio_config", "fastai_audio._validate"])
def test_the_decode_core_and_the_audio_config_load_without_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'fastai', 'fastcore') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
