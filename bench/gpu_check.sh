#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA device, the CUDA tests and the front-end, augmentation, inference, loader,
# seam, streaming, data-parallel and training-throughput benchmarks on the GPU, all their tables in one Markdown file,
# so anyone with a GPU gets numbers comparable with docs/performance.md in one command (about 12 minutes on an H200).
#
#   bench/gpu_check.sh [output file]     default: gpu_check.md, or $OUT/gpu_check.md where OUT is set
#   PARTS="tests throughput" bench/gpu_check.sh     only those parts (of: tests frontend augment inference
#                                                   throughput loader seam ddp scale); default: all of them
#
# The interpreter is $PYTHON, else .venv/bin/python (make install), else python3. A machine that cannot reach a
# package index gets the missing pure-Python packages from .wheels made here by bench/gpu_wheels.sh: with a .whl/
# folder and no fastai importable, they are installed into /tmp/fastai_audio_site first.
# Exit status: 0 when the CUDA tests pass, 1 when one fails, 3 without a CUDA device.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
out=${1:-${OUT:+$OUT/}gpu_check.md}

if [ -d .whl ] && ! "$PY" -c "import fastai" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/fastai_audio_site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/fastai_audio_site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the package from this tree, installed or not
export PYTHONUNBUFFERED=1

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: $PY sees no CUDA device; nothing to measure (run it on a machine with one)" >&2
    exit 3
fi

section() { printf '\n%s\n\n' "$1"; }
PARTS=${PARTS:-tests frontend augment inference throughput loader seam ddp scale}
want() { [[ " $PARTS " == *" $1 "* ]]; }
# each part is bounded (seconds), so one slow part cannot eat a lent machine's whole lease: a part cut short says so
limited() { local s=$1; shift; timeout "$s" "$@"; local rc=$?; [ $rc -eq 124 ] && echo "(cut short after ${s} s)"; return $rc; }
tests=0
{
    echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /'
    "$PY" -c "import os, platform, torch, torchaudio, fastai; print(f'{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), torchaudio {torchaudio.__version__}, fastai {fastai.__version__}')"

    if want tests; then
        section "## CUDA tests (pytest -m cuda)"
        limited 150 "$PY" -m pytest -q -m cuda tests -p no:cacheprovider 2>&1 | tail -20
        tests=${PIPESTATUS[0]}
    fi

    want frontend && section "## Front-end (bench/frontend.py: CPU and CUDA tables)" &&
        limited 90 "$PY" bench/frontend.py --runs 30 2>&1

    want augment && section "## Augmentation cost on the GPU (bench/augment_study.py --skip-study --device cuda)" &&
        limited 60 "$PY" bench/augment_study.py --skip-study --device cuda --runs 30 2>&1

    want inference && section "## Inference on the GPU (bench/inference.py --device cuda)" &&
        limited 60 "$PY" bench/inference.py --device cuda --runs 100 2>&1

    if want throughput; then
        workers=$(( $(nproc) > 16 ? 15 : $(nproc) - 1 ))
        section "## Training throughput (bench/train_throughput.py: the recipe against the model alone and a plain PyTorch pipeline, per-batch breakdown, host-device syncs)"
        limited 420 "$PY" bench/train_throughput.py --clips 8192 --workers "$workers" --bs 64 256 --precision fp32 bf16 2>&1
        section "## Training throughput with torch's fused AdamW and channels_last (the candidate GPU recipe)"
        limited 180 "$PY" bench/train_throughput.py --clips 8192 --workers "$workers" --bs 64 256 --precision bf16 \
            --opt adamw --channels-last --skip plain breakdown 2>&1
        section "## Training throughput from a packed cache (fastai-audio pack; AudioDataLoaders.from_packed)"
        limited 150 "$PY" bench/train_throughput.py --clips 8192 --workers "$workers" --bs 64 256 --precision bf16 \
            --packed --skip plain augment breakdown 2>&1
    fi

    want loader && section "## Loader (bench/loader.py: decoding on this machine's CPUs, batches to the GPU)" &&
        limited 110 "$PY" bench/loader.py --repeats 3 2>&1

    want seam && section "## The seam's shims (bench/seam.py)" && limited 100 "$PY" bench/seam.py --repeats 3 --runs 40 2>&1

    gpus=$("$PY" -c "import torch; print(torch.cuda.device_count())")
    if want ddp; then
        section "## Data-parallel training on CUDA: the CLI under torchrun (nccl), one process per GPU"
        limited 120 "$PY" -m fastai_audio.cli synth-nsynth /tmp/gpu_check_nsynth --size small --no-progress >/dev/null 2>&1
        limited 150 "$PY" -m torch.distributed.run --standalone --nproc_per_node "$gpus" -m fastai_audio.cli train \
            /tmp/gpu_check_nsynth --no-pretrained --epochs 2 --bs 32 --out /tmp/gpu_check_model.pkl 2>&1 |
            grep -E "^(training on|validation loss|exported)"
    fi
    if want scale; then
        section "## Scaling and streaming on this machine (bench/scale.py --gpus N)"
        limited 240 "$PY" bench/scale.py --size medium --workers 8 --repeats 2 --skip memory --gpus "$gpus" --steps 40 2>&1
    fi
    exit "$tests"
} 2>&1 | grep -v "^WARNING: Location" | tee "$out"
status=${PIPESTATUS[0]}
echo "gpu_check: tables in $out (CUDA tests exit status $status)" >&2
exit "$status"
