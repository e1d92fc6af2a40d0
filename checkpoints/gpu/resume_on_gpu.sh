#!/usr/bin/env bash
# The GPU session of issue 24, as one command on the lent device machine
# (see checkpoints/gpu/README.md): install the carried wheels, run the
# CUDA tests, simulate DIVal's 32,000 training pairs on every core, time
# a step at batch 4 and at batch $BATCH, then continue the long learned-PD
# run from its weights ($INIT, default .whl/init-lpd-long, exported here
# with `export_run`) at batch $BATCH until $BUDGET seconds after the start,
# and leave the run folder under $OUT/run.
# Needs: .whl/ with the wheels and libcufft.so.11 (the stub of
# cufft_stub.c), carried with `carry: [".whl"]`.
set -u
T0=$(date +%s)
BATCH=${BATCH:-32}
LR=${LR:-1e-3}
INIT=${INIT:-.whl/init-lpd-long}
BUDGET=${BUDGET:-540}      # seconds from the start to the run's end
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 ODL_GENPRIOR_CACHE=/tmp/odlgp-cache
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /tmp/site/nvidia/cufft/lib && cp .whl/libcufft.so.11 /tmp/site/nvidia/cufft/lib/
export PYTHONPATH=/tmp/site:$PWD
log() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/gpu.log"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/gpu.log"
python3 -c "import torch, odl, astra; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'odl', odl.__version__, 'astra', astra.__version__, 'astra cuda', astra.use_cuda())" 2>&1 | tee -a "$OUT/gpu.log"
nproc | tee -a "$OUT/gpu.log"

# 1. the training pairs, simulated in the background on all cores but one
log "simulating pairs"
# (a file, not stdin: the workers are spawned and import the main module)
cat > /tmp/make_pairs.py <<'EOF'
import os, time
from odl_genprior.problems.ellipse_ct import DivalEllipses, cached_pairs
if __name__ == '__main__':
    b, w = DivalEllipses(), max(1, os.cpu_count() - 1)
    t = time.time()
    cached_pairs(b, 256, 'train', workers=w)  # for the step timings
    cached_pairs(b, 32000, 'train', workers=w)
    print(f'32000 training pairs in {time.time() - t:.1f} s with {w} workers')
EOF
python3 /tmp/make_pairs.py > "$OUT/data.log" 2>&1 &
DATA=$!

# 2. the CUDA tests (the GPU and one core, while the pairs are made)
log "CUDA tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider -k cuda \
  tests/test_cuda.py tests/test_bridge_operator_layer.py tests/test_contracts.py \
  > "$OUT/tests.log" 2>&1
log "tests rc $?: $(tail -1 "$OUT/tests.log")"
wait $DATA; log "pairs: $(tail -1 "$OUT/data.log")"

# 3. seconds per step at batch 4 and at batch $BATCH (steps 20-40 of 40)
common="train unrolled --protocol dival --scheme lpd --start fbp --n-val 20 --device cuda --quiet"
for b in 4 "$BATCH"; do
  timeout 90 python3 -m odl_genprior $common --n-train 256 --batch-size $b --steps 40 \
    --checkpoint-every 40 --out /tmp/time-b$b > /tmp/time-b$b.log 2>&1
  python3 - "$b" >> "$OUT/gpu.log" <<'EOF'
import csv, sys
b = sys.argv[1]
rows = [r for r in csv.DictReader(open(f'/tmp/time-b{b}/metrics.csv'))
        if r.get('loss')]
(s0, t0), (s1, t1) = [(int(r['step']), float(r['time']))
                      for r in (rows[1], rows[-1])]
print(f'batch {b}: {(t1 - t0) / (s1 - s0):.4f} s per step on the GPU')
EOF
done
tail -2 "$OUT/gpu.log"

# 4. the long run, continued at batch $BATCH; steps sized to the time left
PER=$(python3 -c "import re; t=open('$OUT/gpu.log').read(); print(re.findall(r'batch $BATCH: ([0-9.]+) s', t)[-1])")
LEFT=$(( T0 + BUDGET - $(date +%s) - 45 ))
STEPS=$(python3 -c "print(max(100, int(0.85 * $LEFT / $PER) // 100 * 100))")
log "training $STEPS steps at batch $BATCH from $INIT ($PER s per step, $LEFT s left)"
timeout $(( LEFT + 30 )) python3 -m odl_genprior $common --n-train 32000 --batch-size $BATCH \
  --lr $LR --warmup 200 --steps $STEPS --checkpoint-every $(( STEPS / 4 )) \
  --init "$INIT" --out "$OUT/run" > "$OUT/train.log" 2>&1
log "training rc $?"
tail -3 "$OUT/run/metrics.csv" | tee -a "$OUT/gpu.log"
