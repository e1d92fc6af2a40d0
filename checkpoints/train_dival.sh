#!/usr/bin/env bash
# Start or resume one DIVal-protocol training job in runs/NAME (background).
# Usage: train_dival.sh SCHEME GROUP NAME   (GROUP "" for ordinary blocks)
# EPOCHS (default 4), NICE (default 10), THREADS (torch threads, default 1) and START (the
# scheme's starting image, zero or fbp; default: unset, zeros) and AUTOCAST
# (bfloat16 for mixed-precision steps; default: unset, float32) from the environment.
set -euo pipefail
scheme=$1; group=$2; name=$3
cd "$(dirname "$0")/.."
extra=""; [ -n "$group" ] && extra="--group $group"
[ -n "${START:-}" ] && extra="$extra --start $START"
[ -n "${AUTOCAST:-}" ] && extra="$extra --autocast $AUTOCAST"
OMP_NUM_THREADS=${THREADS:-1} nohup nice -n ${NICE:-10} odl-genprior train unrolled --protocol dival \
  --scheme $scheme $extra --n-train 4000 --n-val 20 --epochs ${EPOCHS:-4} --batch-size 4 \
  --checkpoint-every 200 --quiet --out runs/$name >> runs/$name.log 2>&1 &
echo $! > runs/$name.pid
