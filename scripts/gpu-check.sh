#!/usr/bin/env bash
# The first hour on a GPU machine: installs what sdlora needs, runs `doctor`, the webgpu parity
# tests and the SD1.5 LoRA training step of `npm run bench -- --sd15-train` on webgpu, and, where
# PyTorch with CUDA is present, the same step in PyTorch (bench/pytorch_cases.py with the diffusers
# source on PYTHONPATH). Prints one table at the end. On a software adapter (lavapipe, which stands
# in for a GPU on machines without one) the training step shrinks to --px (default 128) so that the
# script still runs end to end in minutes.
#   scripts/gpu-check.sh [--px N] [--batch B] [--diffusers DIR]
set -u
cd "$(dirname "$0")/.."
PX=""; BATCH=""; DIFFUSERS="${DIFFUSERS_SRC:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --px) PX="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --diffusers) DIFFUSERS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
LOG="${GPU_CHECK_LOG:-/tmp/sdlora-gpu-check}"; mkdir -p "$LOG"
step() { echo; echo "== $*"; }

step "install"
command -v node >/dev/null || { echo "Node.js 20+ is required (https://nodejs.org)"; exit 1; }
[ -d node_modules/webgpu ] || npm ci --no-audit --no-fund || npm install --no-audit --no-fund
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
  # Dawn loads Vulkan at run time; the NVIDIA/AMD driver provides the ICD, libvulkan1 the loader.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq libvulkan1; else echo "warning: libvulkan.so.1 not found; install the Vulkan loader (libvulkan1)"; fi
fi

step "doctor"
node bin/sdlora.js doctor 2>&1 | grep -v 'artificially reduced' | tee "$LOG/doctor.txt"
ADAPTER=$(grep -m1 '^  adapter:' "$LOG/doctor.txt" | sed 's/^  adapter: //')
AUTO=$(grep -m1 '^device auto:' "$LOG/doctor.txt" | sed 's/^device auto: //')
SOFTWARE=0; grep -q 'software' <<<"$ADAPTER" && SOFTWARE=1
[ -n "$ADAPTER" ] || { echo "no WebGPU adapter: nothing to check on webgpu"; ADAPTER="none"; }

step "webgpu parity tests"
node --import tsx --test --test-reporter=tap test/engine/webgpu-parity.test.ts test/engine/webgpu-f16.test.ts test/engine/webgpu-matrix.test.ts > "$LOG/parity.tap" 2>&1
# tap nests subtests: count the leaf results at any depth
PASS=$(grep -cE '^\s*ok ' "$LOG/parity.tap" || true); FAIL=$(grep -cE '^\s*not ok ' "$LOG/parity.tap" || true)
echo "parity: $PASS ok, $FAIL not ok (details: $LOG/parity.tap)"

if [ -z "$PX" ]; then if [ "$SOFTWARE" = 1 ]; then PX=128; else PX=512; fi; fi
if [ -z "$BATCH" ]; then if [ "$SOFTWARE" = 1 ]; then BATCH=1; else BATCH=2; fi; fi

step "sdlora: SD1.5 LoRA step on webgpu ($PX px, batch $BATCH)"
SD_MS="-"
if [ "$ADAPTER" != none ]; then
  node --import tsx bench/run.ts --webgpu --no-ops --no-cases --sd15-train --px=$PX --batch=$BATCH > "$LOG/bench.md" 2> "$LOG/bench.err"
  grep -E 'LoRA train step|peak' "$LOG/bench.err"
  MATRIX=$(grep -m1 '^webgpu subgroup-matrix GEMM' "$LOG/bench.md" | sed 's/^webgpu subgroup-matrix GEMM: //')
  SD_MS=$(grep 'SD1.5 LoRA train step' "$LOG/bench.md" | awk -F'|' '{gsub(/ /,"",$4); print $4}')
fi

step "PyTorch: the same step"
PT_MS="-"; PT_NOTE="no PyTorch with CUDA here"
PY="${PYTHON:-python3}"
if "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  PP="${DIFFUSERS:+$DIFFUSERS:}${PYTHONPATH:-}"
  if PYTHONPATH="$PP" "$PY" -c 'import diffusers' 2>/dev/null; then
    PYTHONPATH="$PP" "$PY" bench/pytorch_cases.py --device cuda --only sd15-train --px $PX --batch $BATCH > "$LOG/pytorch.md" 2>&1
    PT_S=$(grep '^| SD1.5 LoRA' "$LOG/pytorch.md" | awk -F'|' '{gsub(/ /,"",$3); print $3}')
    [ -n "$PT_S" ] && PT_MS=$(awk -v s="$PT_S" 'BEGIN{printf "%.1f", s*1000}') && PT_NOTE=$(grep -m1 '^PyTorch' "$LOG/pytorch.md")
  else PT_NOTE="torch+CUDA present, diffusers not importable (pass --diffusers DIR, e.g. the v0.30.3 source's src/)"; fi
fi

RATIO="-"
if [ "$SD_MS" != "-" ] && [ "$PT_MS" != "-" ]; then RATIO=$(awk -v a="$SD_MS" -v b="$PT_MS" 'BEGIN{printf "%.2fx", a/b}'); fi
echo
echo "| item | value |"
echo "|---|---|"
echo "| adapter | $ADAPTER |"
echo "| device auto | $AUTO |"
echo "| webgpu parity, f16 and subgroup-matrix tests | $PASS ok, $FAIL failed |"
echo "| subgroup-matrix GEMM (tensor cores) | ${MATRIX:--} |"
echo "| SD1.5 LoRA step, ${BATCH}x${PX}px, sdlora webgpu | $SD_MS ms |"
echo "| same step, PyTorch | $PT_MS ms ($PT_NOTE) |"
echo "| sdlora / PyTorch | $RATIO |"
[ "$FAIL" = 0 ] || exit 1
