#!/usr/bin/env bash
# Wheels of what bench/gpu_check.sh needs and a bare CUDA machine lacks (one with Python 3.12 and PyTorch, but no
# fastai, soundfile or librosa, as the project's lent GPU machines are), downloaded into .whl/ here, for a machine
# that cannot reach a package index. The versions are the lock file's. gpu_check.sh installs them when it finds .whl/.
# Usage: bench/gpu_wheels.sh [python version, default 3.12]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-3.12}
lock=requirements/lock.txt
# pure-Python packages and manylinux wheels: fastai and its small dependencies, audio I/O, the test suite's librosa,
# and the NSynth renderer (the benchmarks and fixtures render notes)
names="fastai fastcore fasttransform plum-dispatch beartype fastprogress fastdownload python-fasthtml beautifulsoup4
soupsieve httpx2 httpcore2 truststore itsdangerous oauthlib python-multipart starlette uvicorn soundfile cffi pycparser
librosa audioread decorator pooch platformdirs soxr pretty_midi mido importlib_resources webdataset braceexpand"
pins=()
for name in $names; do
    pin=$(grep -i -m1 "^${name//-/[-_]}==" "$lock" || true)
    pins+=("${pin:-$name}")
done
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
platforms=()
for n in 17 24 27 28 31 34 35 38 39; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
PIP_CONSTRAINT=/dev/null python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$py" \
    --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 -d .whl "${pins[@]}" \
    "$(grep -m1 '^TINYSF' Makefile | sed 's/.*:= *//')"
du -sh .whl
