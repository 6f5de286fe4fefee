#!/usr/bin/env bash
# One self-contained check of cj2's GPU paths (bf16, sdpa, flash-attn when installed, packed rows, the chunked
# loss against the naive one, single-GPU FSDP, Lightning FSDP with cj2's module, sharded checkpoint -> HF
# export). No network, no Hydra, no wandb; tiny random models and random token ids. A few minutes on one GPU.
#
#   bash experiments/perf/gpu_check.sh            # on a CUDA machine, from anywhere inside the repository
#   bash experiments/perf/gpu_check.sh --cpu      # dry run of the same script on the CPU (seconds)
#   bash experiments/perf/gpu_check.sh --only flash FSDP
#
# Prints one line per check as it finishes, then a markdown table; exits 1 if any check FAILED
# (SKIP is not a failure). PYTHON picks the interpreter (default: python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"   # cj2 from this checkout, installed or not
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 WANDB_MODE=disabled
exec "${PYTHON:-python3}" "$here/gpu_check.py" "$@"
