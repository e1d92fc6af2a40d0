#!/usr/bin/env bash
# Start or resume one HTC2022 limited-angle training job in runs/NAME (background).
# Usage: train_htc2022.sh SCHEME GROUP NAME   (GROUP "" for ordinary blocks)
# EPOCHS (default 5), NICE (default 10), THREADS (torch threads, default 2),
# ANGLE_STEP (degrees, default 2) and AUTOCAST (default bfloat16) from the environment.
set -euo pipefail
scheme=$1; group=$2; name=$3
cd "$(dirname "$0")/.."
extra=""; [ -n "$group" ] && extra="--group $group"
[ -n "${AUTOCAST-bfloat16}" ] && extra="$extra --autocast ${AUTOCAST-bfloat16}"
mkdir -p runs
OMP_NUM_THREADS=${THREADS:-2} nohup nice -n ${NICE:-10} odl-genprior train unrolled --protocol htc2022 \
  --scheme $scheme $extra --angle-step ${ANGLE_STEP:-2} --n-train 4000 --n-val 20 \
  --epochs ${EPOCHS:-5} --batch-size 4 --checkpoint-every 200 --quiet --out runs/$name >> runs/$name.log 2>&1 &
echo $! > runs/$name.pid
