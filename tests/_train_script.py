"""A tiny seeded training run, shared by tests/test_training.py and its
subprocesses (the SIGKILL-and-resume test).

    python tests/_train_script.py OUT_DIR [--kill-at STEP] [--sleep SECONDS]

``--kill-at`` makes the process SIGKILL itself right after that step (before
the step's own checkpoint); ``--sleep`` slows every step down so that a parent
can kill it from outside at an arbitrary moment.
"""
import argparse
import functools
import os
import signal
import time

import torch

from odl_genprior.training import seed_all, train

EPOCHS, BATCH, CHECKPOINT_EVERY = 3, 8, 3
STEPS = EPOCHS * (37 // BATCH)  # 37 samples: 4 steps an epoch, 5 left out


def make_problem():
    """An MLP with dropout (so RNG state matters) and random data."""
    seed_all(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Dropout(0.3),
        torch.nn.Linear(16, 2))
    x, y = torch.randn(37, 4), torch.randn(37, 2)
    val = (torch.randn(9, 4), torch.randn(9, 2))
    return model, (x, y), val


def mse(model, batch):
    x, y = batch
    loss = torch.nn.functional.mse_loss(model(x), y)
    return {'loss': loss, 'mean_abs_out': model(x).abs().mean()}


def noisy_val(model, val):
    # Draws random numbers: validation is part of the RNG stream too.
    x, y = val
    return torch.nn.functional.mse_loss(model(x + 0.1 * torch.randn_like(x)),
                                        y).item()


def run(out_dir, callback=None):
    model, data, val = make_problem()
    result = train(
        model, mse, data, out_dir=out_dir, epochs=EPOCHS, batch_size=BATCH,
        seed=5, optimizer=functools.partial(torch.optim.AdamW, lr=0.02),
        scheduler=functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR,
                                    T_max=STEPS),
        clip_grad_norm=1.0, val_data=val, val_metric=noisy_val, val_every=2,
        checkpoint_every=CHECKPOINT_EVERY, progress=False, callback=callback)
    return model, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('out_dir')
    parser.add_argument('--kill-at', type=int, default=None)
    parser.add_argument('--sleep', type=float, default=0.0)
    args = parser.parse_args()

    def callback(info):
        if info['step'] == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(args.sleep)

    run(args.out_dir, callback)


if __name__ == '__main__':
    main()
