#!/usr/bin/env bash
# Start or resume one DIVal-protocol training job in runs/NAME (background).
# Usage: train_dival.sh SCHEME GROUP NAME   (GROUP "" for ordinary blocks)
# From the environment: EPOCHS (default 4) or STEPS (a budget of steps,
# replaces EPOCHS), N_TRAIN (training pairs, default 4000; 32000 is DIVal's
# whole training split, simulated once into the cache), NICE (default 10),
# THREADS (torch threads, default 1), START (zero or fbp; default zeros),
# AUTOCAST (bfloat16; default float32), INIT (a run folder or shipped name
# to start from), LR (default 1e-3), WARMUP (steps, default 0), BATCH
# (default 4), CHECKPOINT_EVERY (default 200).
# A run kept under checkpoints/NAME (see checkpoints/README.md) is copied
# to runs/NAME first when runs/NAME does not exist: it resumes there.
set -euo pipefail
scheme=$1; group=$2; name=$3
cd "$(dirname "$0")/.."
mkdir -p runs
if [ ! -e "runs/$name" ] && [ -f "checkpoints/$name/checkpoint.pt" ]; then
  cp -r "checkpoints/$name" "runs/$name"
fi
extra=""; [ -n "$group" ] && extra="--group $group"
[ -n "${START:-}" ] && extra="$extra --start $START"
[ -n "${AUTOCAST:-}" ] && extra="$extra --autocast $AUTOCAST"
[ -n "${INIT:-}" ] && extra="$extra --init $INIT"
[ -n "${WARMUP:-}" ] && extra="$extra --warmup $WARMUP"
[ -n "${LR:-}" ] && extra="$extra --lr $LR"
if [ -n "${STEPS:-}" ]; then extra="$extra --steps $STEPS"
else extra="$extra --epochs ${EPOCHS:-4}"; fi
OMP_NUM_THREADS=${THREADS:-1} nohup nice -n ${NICE:-10} odl-genprior train unrolled --protocol dival \
  --scheme $scheme $extra --n-train ${N_TRAIN:-4000} --n-val 20 --batch-size ${BATCH:-4} \
  --checkpoint-every ${CHECKPOINT_EVERY:-200} --quiet --out runs/$name >> runs/$name.log 2>&1 &
echo $! > runs/$name.pid
