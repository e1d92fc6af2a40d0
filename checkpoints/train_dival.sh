#!/bin/bash
# One background training job on DIVal's ellipses; resumable (rerun it).
scheme=$1; group=$2; name=$3
cd "$(dirname "$0")/.."
extra=""; [ -n "$group" ] && extra="--group $group"
OMP_NUM_THREADS=1 nohup nice -n 10 odl-genprior train unrolled --protocol dival \
  --scheme $scheme $extra --n-train 4000 --n-val 20 --epochs 4 --batch-size 4 \
  --checkpoint-every 200 --quiet --out runs/$name >> runs/$name.log 2>&1 &
echo $! > runs/$name.pid
