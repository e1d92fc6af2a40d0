#!/usr/bin/env bash
# Keep what a training run in runs/NAME needs to go on elsewhere:
# config.json, metrics.csv and checkpoint.pt, copied to checkpoints/NAME
# (commit that folder before a session ends). train_dival.sh resumes from it.
# Usage: keep_run.sh NAME
set -euo pipefail
name=$1
cd "$(dirname "$0")/.."
mkdir -p "checkpoints/$name"
for f in config.json metrics.csv checkpoint.pt; do
  [ -f "runs/$name/$f" ] && cp --no-preserve=mode "runs/$name/$f" "checkpoints/$name/$f"
done
python - "$name" <<'PY'
import json, sys
c = json.load(open(f'checkpoints/{sys.argv[1]}/config.json'))
print(f"kept {sys.argv[1]}: step {c.get('steps_done')} of {c.get('steps')}, "
      f"{c.get('wall_seconds', 0) / 3600:.2f} h of wall time in "
      f"{len(c.get('sessions', []))} session(s)")
PY
