"""Two-process data-parallel training for tests/test_training.py.

    torchrun --standalone --nproc_per_node=2 tests/_ddp_script.py OUT_DIR

Trains three times: with ``loss_fn`` calling the model (train initializes
the gloo process group; DistributedDataParallel reduces the gradients),
with a ``loss_fn`` that calls only the model's layers (averaged gradients)
and with ``step_fn`` and two models (reusing that group). Every process
saves what it ends with to
``OUT_DIR/rank{r}.pt``; the test compares the processes with each other and
with single-process training.
"""
import functools
import os
import sys

import torch
import torch.distributed as dist

from odl_genprior.training import seed_all, train

BATCH, EPOCHS = 8, 2


def make_data():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(36, 5, generator=gen)
    y = torch.randn(36, 1, generator=gen)
    return x, y


def make_model():
    seed_all(2)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(),
                               torch.nn.Linear(7, 1))


def mse(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


def val_mse(model, data):
    return mse(model, data).item()


def run_loss_fn(out_dir):
    model = make_model()
    result = train(model, mse, make_data(), out_dir=out_dir, epochs=EPOCHS,
                   batch_size=BATCH, seed=4,
                   optimizer=functools.partial(torch.optim.SGD, lr=0.1,
                                               momentum=0.5),
                   val_data=make_data(), val_metric=val_mse, progress=False)
    return model, result


def mse_by_layers(model, batch):
    # never calls the model itself: DDP cannot see it, the loop averages
    x, y = batch
    return torch.nn.functional.mse_loss(model[2](model[1](model[0](x))), y)


def run_loss_by_layers(out_dir):
    model = make_model()
    result = train(model, mse_by_layers, make_data(), out_dir=out_dir,
                   epochs=EPOCHS, batch_size=BATCH, seed=4, lr=0.05,
                   progress=False)
    return model, result


def two_model_step(models, opts, batch, step):
    # A GAN-shaped step: 'a' every step, 'b' every other step, each with its
    # own optimizer; the gradient averaging happens inside opt.step().
    x, y = batch
    opts['a'].zero_grad()
    loss_a = mse(models['a'], (x, y))
    loss_a.backward()
    opts['a'].step()
    out = {'loss_a': loss_a.item()}
    if step % 2 == 0:
        opts['b'].zero_grad()
        loss_b = torch.nn.functional.mse_loss(
            models['b'](x), models['a'](x).detach())
        loss_b.backward()
        opts['b'].step()
        out['loss_b'] = loss_b.item()
    return out


def run_step_fn(out_dir):
    models = {'a': make_model(), 'b': make_model()}
    result = train(models, None, make_data(), step_fn=two_model_step,
                   out_dir=out_dir, epochs=EPOCHS, batch_size=BATCH, seed=4,
                   lr=0.05, progress=False)
    return models, result


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def main():
    out = sys.argv[1]
    rank = int(os.environ['RANK'])
    model, r1 = run_loss_fn(os.path.join(out, 'loss_fn'))
    assert dist.is_initialized() and dist.get_world_size() == 2
    layered, r3 = run_loss_by_layers(os.path.join(out, 'loss_by_layers'))
    models, r2 = run_step_fn(os.path.join(out, 'step_fn'))
    dist.destroy_process_group()
    torch.save({'loss_fn': params(model), 'step_fn_a': params(models['a']),
                'step_fn_b': params(models['b']),
                'loss_by_layers': params(layered),
                'val_history': r1.val_history, 'losses': r1.losses,
                'step': r1.step,
                'data_parallel': [r1.data_parallel, r3.data_parallel,
                                  r2.data_parallel]},
               os.path.join(out, f'rank{rank}.pt'))


if __name__ == '__main__':
    main()
