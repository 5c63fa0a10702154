#!/usr/bin/env bash
# The CUDA path, proven in one go on a GPU machine that starts bare and reaches no network:
#   1. set up: PyAV and the real network's weights come with the working tree (.gpu/, see --prepare);
#   2. tests/test_cuda.py;
#   3. the GPU rows of the benchmark (scripts/gpu_bench.py): inference fps at 1024, batch 1/4/8,
#      float16/bfloat16, eager/compiled, peak GPU memory; end-to-end 1080p `video` and its stages;
#   4. precision of float16 and bfloat16 against float32 on the real network (scripts/precision.py).
# It prints one markdown table and writes it to $OUT/gpu_check.md (and each step's log beside it).
#
# Usage:
#   scripts/gpu_check.sh --prepare   here, with network: fill .gpu/ (the PyAV wheel for the GPU machine's
#                                    Python 3.12 and IS-Net small, each xz-compressed: about 54 MB in all)
#   scripts/gpu_check.sh             on the GPU machine (carry .gpu); about 7 minutes on an H100
#   scripts/gpu_check.sh --dry-run   every step on the CPU with tiny sizes, to test the script itself (make gpu-dry)
#   scripts/gpu_check.sh --dry-run-eager
#                                    the same without the compiled configurations (minutes of CPU compiling):
#                                    the slice make test runs
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-run}
PY=${PYTHON:-python3}
CARRY=$ROOT/.gpu
AV_VERSION=19.0.2

if [ "$MODE" = "--prepare" ]; then
    set -e
    mkdir -p "$CARRY"
    small=$($PY scripts/real_network.py small)
    xz -T2 -9 -c "$small" > "$CARRY/isnet-small.onnx.xz.partial" && mv "$CARRY/isnet-small.onnx.xz.partial" "$CARRY/isnet-small.onnx.xz"
    wheels=$(mktemp -d)
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 -d "$wheels" "av==$AV_VERSION"
    site=$(mktemp -d)
    $PY -m zipfile -e "$wheels"/av-*.whl "$site"
    tar -C "$site" -cf - . | xz -T2 -9 > "$CARRY/av-site.tar.xz"
    rm -rf "$wheels" "$site"
    ls -l "$CARRY"
    exit 0
fi

OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
TABLE=$OUT/gpu_check.md
: > "$TABLE"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 RMBG_CACHE=$WORK/cache TORCHINDUCTOR_CACHE_DIR=$WORK/inductor

if [ "$MODE" = "--dry-run" ] || [ "$MODE" = "--dry-run-eager" ]; then
    DRY=(--dry-run)
    if [ "$MODE" = "--dry-run-eager" ]; then
        DRY+=(--configs float16:1:0,float16:4:0,float16:8:0,bfloat16:1:0,bfloat16:4:0,bfloat16:8:0)
    fi
    # the CPU has no CUDA: the same steps with tiny sizes, on the real network (fetched and cached here)
    WEIGHTS=$($PY scripts/real_network.py medium) || exit 1
    PRECISION=(--device cpu --model-size 64 --modes float16,bfloat16)
else
    DRY=()
    if ! $PY -c "import av" 2>/dev/null; then
        # Python's own xz and tar: the machine's image may lack the xz tool
        $PY -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='data')" \
            "$CARRY/av-site.tar.xz" "$WORK/site" || exit 1
        export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    WEIGHTS=$WORK/isnet-small.onnx
    $PY -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
        "$CARRY/isnet-small.onnx.xz" "$WEIGHTS" || exit 1
    PRECISION=(--device cuda --model-size 1024 --modes float32-tf32,float16,bfloat16,float16-compile)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/nvidia-smi.txt"
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}

step() {  # step NAME SECONDS COMMAND...: run with a limit, log it, note its status and seconds in the table
    local name=$1 limit=$2 status started=$SECONDS
    shift 2
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    status=$?
    echo "== $name: status $status ($((SECONDS - started)) s)"
    echo "step $name: status $status ($((SECONDS - started)) s)" >> "$OUT/steps.txt"
}

echo "# gpu_check $(date -u +%FT%TZ) ${DRY[*]}" >> "$TABLE"
# phase 1, nothing timed: compiling the compiled configurations (in parallel), the CUDA tests and the
# precision check share the GPU; phase 2 times every configuration alone
step warm 220 $PY scripts/gpu_bench.py --weights "$WEIGHTS" --table "$WORK/warm.md" --parts warm "${DRY[@]}" &
step tests 220 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py &
step precision 220 $PY scripts/precision.py --weights "$WEIGHTS" "${PRECISION[@]}" --out "$WORK/precision.md" &
wait
{
    echo ""
    echo "tests/test_cuda.py: $(grep -E '[0-9]+ (passed|failed|skipped)' "$OUT/tests.log" | tail -n 1)"
    echo ""
    tail -n +3 "$WORK/warm.md"
} >> "$TABLE"
step bench 330 $PY scripts/gpu_bench.py --weights "$WEIGHTS" --table "$TABLE" --parts infer,video "${DRY[@]}"
{
    echo ""
    cat "$WORK/precision.md" 2>/dev/null || echo "precision: no table (see precision.log)"
    echo "(precision ran beside the compile and the tests: its s/frame column is not a speed figure)"
    echo ""
    cat "$OUT/steps.txt"
} >> "$TABLE"
echo
cat "$TABLE"
! grep -qv "status 0 (" "$OUT/steps.txt"
