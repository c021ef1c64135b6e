#!/usr/bin/env bash
# GPU speed check (issue 16): training throughput with TFLOP/s and MFU for AsLeD-Net and two baselines
# (NAFNet: a plain convolutional U-Net; BasicVSR++: flow + deformable convolutions), and the profile of
# AsLeD-Net at the paper's protocol (7-frame 256x256 clip), each as JSON under $OUT (default: gpu_check/).
#
# Run from the repository root on a machine with one CUDA GPU: `bash scripts/gpu_check.sh`.
# About 3-4 minutes on one H200 (every step is capped by `timeout`, so one slow configuration, e.g. a
# compilation, cannot eat the rest). Needs python3 with torch, torchvision, numpy, pandas, pyyaml,
# opencv, scikit-image and tqdm (asled's core imports); `asled profile` also reads params.yaml, which
# needs jsonschema: where it is missing, carry its wheels in .whl/ (they are installed to /tmp/site).
set -u
OUT=${OUT:-gpu_check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$PY" -c "import jsonschema" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{ date -u +%FT%TZ; nvidia-smi -L; "$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } \
    > "$OUT/device.txt" 2>&1

run() {  # run NAME SECONDS ARGS...: asled ARGS, JSON to $OUT/NAME.json, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name: asled $*"
    timeout "$limit" "$PY" -m asled "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"
    echo "   exit $? ($(wc -c < "$OUT/$name.json") bytes of JSON)"
}

# the paper's training step (batch 4 x 7 frames x 128x128), fp32 eager first, then the fast options
run bench_asled_net 150 bench train --method asled_net --json --iterations 10 --warmup 3 \
    --configs tf32_channels_last bf16 bf16_channels_last
# regional compilation on its own, so that a long compile cannot lose the figures above
run bench_asled_net_regional 150 bench train --method asled_net --json --iterations 10 --warmup 3 \
    --configs bf16_channels_last_regional
run bench_nafnet 60 bench train --method nafnet --json --iterations 10 --warmup 3
run bench_basicvsr_pp 90 bench train --method basicvsr_pp --json --iterations 10 --warmup 3
# Table 1's protocol at the paper's scale: 7-frame 256x256 clip, median of 5 after 2 warm-up runs
run profile_asled_net 60 profile asled_net --dataset realmcvsr --json
