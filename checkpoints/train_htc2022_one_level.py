"""One-level comparison run: learned FB trained on 30 degrees only.

The same network and budget as ``train_htc2022.sh lfb "" htc-lfb-128`` with
EPOCHS=1 (1000 steps on 4000 pairs, batch 4, bf16), but every training range
is 30 degrees (``min_range = max_range = 30``), so its fixed operator has the
16 rows of 0, 2, ..., 30 degrees. docs/htc2022.md compares it at 30 degrees
with the network trained on all ranges. Usage (from the repository root,
resumable)::

    OMP_NUM_THREADS=1 nohup nice -n 10 python checkpoints/train_htc2022_one_level.py &
"""
from odl_genprior.models.limited_angle import train_limited_angle

train_limited_angle({'scheme': 'lfb', 'group': None,
                     'htc2022': {'angle_step': 2.0, 'min_range': 30.0,
                                 'max_range': 30.0}},
                    'runs/htc-lfb-30only-128', n_train=4000, n_val=20,
                    epochs=1, batch_size=4, checkpoint_every=200,
                    progress=False, autocast='bfloat16',
                    command='python checkpoints/train_htc2022_one_level.py')
