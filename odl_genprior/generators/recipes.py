"""Recipes: build, train and reload the package's generators by name.

A recipe is a plain dict (``kind``, ``dataset``, sizes) that `build_model`
turns into a module. `fit` trains it with `odl_genprior.training.train`
(seeded, checkpointed, resumable) and writes the recipe to
``config.json`` beside the weights, so `load_run` can rebuild the model
from a run directory without executing any code from it. The small runs
shipped inside the package load by name with `odl_genprior.models.pretrained`
(the registry's ``'generator'`` family).
"""
import functools
from pathlib import Path

import numpy as np
import odl
import torch

from odl_genprior import data as _data
from odl_genprior.generators.autoencoders import VAE, Autoencoder
from odl_genprior.generators.cgnn import CGNN
from odl_genprior.generators.decoders import (ConvDecoder, ConvEncoder,
                                              MLPDecoder, MLPEncoder)
from odl_genprior.diffusion.score_recipe import (build_score_model,
                                                  complete_score_recipe,
                                                  score_training)
from odl_genprior.generators.signals1d import (CGNNDecoder, ConvDecoder1d,
                                               ConvEncoder1d)
from odl_genprior.generators.wgan import WGANGP, ConvCritic
from odl_genprior.training import (load_weights,
                                   read_run_config, recorded_command,
                                   seed_all, train)

__all__ = ('KINDS', 'KIND_HELP', 'DATASETS', 'SIGNAL_DEFAULTS', 'CGNN_DEFAULTS',
           'complete_recipe', 'build_model', 'load_dataset', 'fit',
           'load_run', 'generator_of')

KINDS = ('vae', 'ae', 'gan', 'cgnn', 'score')
#: What each kind trains (``odl-genprior train KIND --help``).
KIND_HELP = {
    'vae': 'variational autoencoder on images (MNIST, ellipses) or 1D '
           'signals',
    'ae': 'autoencoder on images (MNIST, ellipses) or 1D signals',
    'gan': 'Wasserstein GAN with gradient penalty on images',
    'cgnn': 'VAE whose decoder is a 1D continuous generative network '
            '(signals)',
    'score': 'ScoreUNet by denoising score matching (diffusion prior)',
}
DATASETS = ('mnist', 'ellipses', 'signals')


# Defaults of the 1D signal recipes (dataset 'signals'). `fit` writes them
# into config.json, so a run folder still rebuilds its model if they change.
SIGNAL_DEFAULTS = {'size': 4096, 'modes': 2, 'latent_dim': 15, 'width': 32,
                   'likelihood': 'gaussian', 'beta': 1e-2}
CGNN_DEFAULTS = {'levels': [2, 3, 4, 5, 6, 7],
                 'channels': [32, 16, 8, 4, 2, 1], 'wavelet': 'db2',
                 'boundary': 'zero'}


def _image_shape(recipe):
    return (28, 28) if recipe['dataset'] == 'mnist' else (recipe['size'],) * 2


def complete_recipe(recipe):
    """The recipe with every default written out (1D signal recipes).

    Image recipes (``'mnist'``, ``'ellipses'``) are returned unchanged, so
    their ``config.json`` stays as it was, except score recipes
    (``kind='score'``), which `score_recipe.complete_score_recipe`
    completes. For ``dataset='signals'`` the
    defaults `SIGNAL_DEFAULTS` (and `CGNN_DEFAULTS` for ``kind='cgnn'``)
    fill the missing keys, and ``arch`` defaults to ``'conv1d'``.

    Examples
    --------
    >>> r = complete_recipe({'kind': 'cgnn', 'dataset': 'signals'})
    >>> r['size'], r['latent_dim'], r['levels'], r['arch']
    (4096, 15, [2, 3, 4, 5, 6, 7], 'conv1d')
    """
    recipe = dict(recipe)
    if recipe.get('kind') == 'score':
        return complete_score_recipe(recipe)
    if recipe.get('dataset') != 'signals':
        return recipe
    defaults = dict(SIGNAL_DEFAULTS, arch='conv1d')
    if recipe.get('kind') == 'cgnn':
        defaults.update(CGNN_DEFAULTS)
    if recipe.get('arch') == 'mlp':
        defaults['hidden'] = [500, 500]
    for key, value in defaults.items():
        if recipe.get(key) is None:
            recipe[key] = value
    return recipe


def build_model(recipe):
    """Build the (untrained) module a recipe describes.

    ``recipe`` keys: ``kind`` ('vae', 'ae', 'gan', or 'cgnn': a VAE whose
    decoder is a 1D `CGNN`), ``dataset`` ('mnist', 'ellipses', 'signals'),
    ``latent_dim``, ``arch`` ('mlp' or 'conv' for images; 'conv1d' or
    'mlp' for signals, the encoder's for 'cgnn'), ``size`` (image side, or
    samples per signal), ``width`` (conv channels), ``hidden`` (MLP widths),
    ``likelihood`` and ``beta`` (VAE). For 'cgnn': ``levels``,
    ``channels``, ``wavelet``, ``boundary`` (see `CGNN`). Signal recipes are
    completed by `complete_recipe`. ``kind='score'``: a score network
    (`odl_genprior.diffusion.score_recipe.build_score_model`).

    The 1D models take and give signals ``(B, 1, size)``: encoder
    `ConvEncoder1d` (or `MLPEncoder`), decoder `CGNNDecoder` (the CGNN
    rendered by exact cell averages at ``size`` samples), `ConvDecoder1d`
    (the discrete counterpart) or `MLPDecoder`.

    Examples
    --------
    >>> vae = build_model({'kind': 'vae', 'dataset': 'mnist',
    ...                    'latent_dim': 20, 'arch': 'mlp'})
    >>> vae.decoder(torch.zeros(1, 20)).shape
    torch.Size([1, 1, 28, 28])
    >>> cg = build_model({'kind': 'cgnn', 'dataset': 'signals', 'size': 256})
    >>> cg.decoder(torch.zeros(1, 15)).shape
    torch.Size([1, 1, 256])
    """
    kind = recipe.get('kind')
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
    if kind == 'score':
        return build_score_model(recipe)
    if recipe.get('dataset') not in DATASETS:
        raise ValueError(f'dataset must be one of {DATASETS}, got '
                         f'{recipe.get("dataset")!r}')
    if recipe['dataset'] == 'signals':
        return _build_signal_model(complete_recipe(recipe))
    if kind == 'cgnn':
        raise ValueError("kind 'cgnn' (a VAE with a 1D CGNN decoder) needs "
                         f"dataset 'signals', got {recipe['dataset']!r}")
    shape = _image_shape(recipe)
    n = int(recipe.get('latent_dim', 20))
    arch = recipe.get('arch', 'mlp' if recipe['dataset'] == 'mnist'
                      else 'conv')
    width = int(recipe.get('width', 64))
    hidden = tuple(recipe.get('hidden', (500, 500)))
    if kind == 'gan':
        return WGANGP(ConvDecoder(n, shape[0], width),
                      ConvCritic(shape[0], width), latent_dim=n)
    enc_out = 2 * n if kind == 'vae' else n
    if arch == 'mlp':
        enc, dec = MLPEncoder(enc_out, shape, hidden), MLPDecoder(n, shape,
                                                                  hidden)
    elif arch == 'conv':
        enc = ConvEncoder(enc_out, shape[0], width)
        dec = ConvDecoder(n, shape[0], width)
    else:
        raise ValueError(f"arch must be 'mlp' or 'conv', got {arch!r}")
    if kind == 'vae':
        return VAE(enc, dec, n, likelihood=recipe.get('likelihood',
                                                      'bernoulli'),
                   beta=float(recipe.get('beta', 1.0)))
    return Autoencoder(enc, dec)


def _build_signal_model(r):
    kind, size, n = r['kind'], int(r['size']), int(r['latent_dim'])
    width, arch = int(r['width']), r['arch']
    if kind == 'gan':
        raise ValueError("kind 'gan' is not available for dataset 'signals';"
                         " use 'vae', 'ae' or 'cgnn'")
    enc_out = n if kind == 'ae' else 2 * n
    if arch == 'conv1d':
        enc = ConvEncoder1d(enc_out, size, width)
    elif arch == 'mlp':
        enc = MLPEncoder(enc_out, (size,), tuple(r['hidden']))
    else:
        raise ValueError("arch for dataset 'signals' must be 'conv1d' or "
                         f"'mlp', got {arch!r}")
    if kind == 'cgnn':
        cgnn = CGNN(n, channels=tuple(r['channels']),
                    levels=tuple(r['levels']), wavelet=r['wavelet'], dim=1,
                    boundary=r['boundary'])
        dec = CGNNDecoder(cgnn, size)
    elif arch == 'conv1d':
        dec = ConvDecoder1d(n, size, width)
    else:
        dec = MLPDecoder(n, (size,), tuple(r['hidden']))
    if kind == 'ae':
        return Autoencoder(enc, dec)
    return VAE(enc, dec, n, likelihood=r['likelihood'], beta=float(r['beta']))


def generator_of(model):
    """The latent-to-image part of a trained model (decoder or generator).

    Examples
    --------
    >>> m = build_model({'kind': 'ae', 'dataset': 'mnist', 'latent_dim': 4})
    >>> generator_of(m) is m.decoder
    True
    """
    return model.generator if isinstance(model, WGANGP) else model.decoder


def load_dataset(recipe, n_train, n_val, seed=0, data_dir=None):
    """Training and validation data, float32 in [0, 1].

    Images ``(N, 1, H, W)``; signals ``(N, 1, size)``.
    MNIST: the first ``n_train`` training images and the first ``n_val``
    test images (folder ``data_dir`` or ``$ODL_GENPRIOR_MNIST``).
    Ellipses: random-ellipse images from seeds ``seed`` (train) and
    ``seed + 1`` (validation). Signals: `odl_genprior.data.trig_signals`
    (``modes`` modes, ``size`` samples) from seeds ``seed`` (train) and
    ``seed + 1`` (validation).

    Examples
    --------
    >>> tr, va = load_dataset({'dataset': 'ellipses', 'size': 16}, 4, 2)
    >>> tr.shape, va.shape
    (torch.Size([4, 1, 16, 16]), torch.Size([2, 1, 16, 16]))
    >>> tr, va = load_dataset({'dataset': 'signals', 'size': 64}, 4, 2)
    >>> tr.shape, bool((tr[0] != va[0]).any())
    (torch.Size([4, 1, 64]), True)
    """
    if recipe['dataset'] == 'mnist':
        x_tr, _ = _data.load_mnist('train', data_dir, limit=n_train)
        x_va, _ = _data.load_mnist('test', data_dir, limit=n_val)
    elif recipe['dataset'] == 'ellipses':
        size = int(recipe['size'])
        space = odl.uniform_discr([-1, -1], [1, 1], (size, size))
        x_tr = _data.ellipse_batch(space, n_train, seed=seed)
        x_va = _data.ellipse_batch(space, n_val, seed=seed + 1)
    elif recipe['dataset'] == 'signals':
        recipe = complete_recipe(recipe)
        size, modes = int(recipe['size']), int(recipe['modes'])
        x_tr = _data.trig_signals(n_train, size, modes, seed=seed)
        x_va = _data.trig_signals(n_val, size, modes, seed=seed + 1)
    else:
        raise ValueError(f'dataset must be one of {DATASETS}, got '
                         f'{recipe["dataset"]!r}')
    return (torch.from_numpy(np.ascontiguousarray(x_tr))[:, None],
            torch.from_numpy(np.ascontiguousarray(x_va))[:, None])


def _model_loss(model, batch):
    return model.loss(batch)


def _gan_parts(gan):
    # The loop sees two networks with one optimizer each.
    return {'generator': gan.generator, 'critic': gan.critic}


def _gan_step_fn(gan):
    def step_fn(model, optimizer, batch, step):
        return _gan_step(gan, optimizer, batch, step)
    return step_fn


def _gan_step(gan, optimizer, batch, step):
    """One critic step; every ``n_critic``-th step also a generator step."""
    opt_c, opt_g = optimizer['critic'], optimizer['generator']
    opt_c.zero_grad(set_to_none=True)
    loss_c = gan.critic_loss(batch)
    loss_c.backward()
    opt_c.step()
    out = {'critic': loss_c.item()}
    if step % gan.n_critic == 0:
        opt_g.zero_grad(set_to_none=True)
        loss_g = gan.generator_loss(batch.shape[0])
        loss_g.backward()
        opt_g.step()
        out['generator'] = loss_g.item()
    return out


def _val_metric(kind, gan=None):
    def metric(model, val):
        if kind == 'gan':
            return {'wasserstein': gan.wasserstein_estimate(val)}
        x_hat = model(val)
        x_hat = x_hat[0] if isinstance(x_hat, tuple) else x_hat
        return {'loss': model.loss(val).item(),
                'mse': torch.mean((x_hat - val) ** 2).item()}
    return metric


def fit(recipe, out_dir, *, n_train=10000, n_val=500, epochs=10,
        batch_size=64, lr=1e-3, seed=0, data_dir=None, progress=True,
        resume=True, command=None, checkpoint_every=None, log_every=50,
        steps=None, device='cpu'):
    """Train a recipe's model; the run directory can be reloaded by name.

    Writes ``config.json`` (the recipe completed by `complete_recipe`, the
    training options, the command) and ``weights.pt`` through
    `odl_genprior.training.train`; an interrupted run resumes from its last
    checkpoint. ``steps`` (a budget in steps, replacing ``epochs``) and
    ``device`` are `odl_genprior.training.train`'s. Returns the model (eval
    mode).

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> rec = {'kind': 'ae', 'dataset': 'ellipses', 'size': 16,
    ...        'latent_dim': 4, 'arch': 'mlp', 'hidden': [32]}
    >>> ae = fit(rec, d, n_train=32, n_val=8, epochs=1, batch_size=16,
    ...          progress=False)
    >>> load_run(d).decoder(torch.zeros(1, 4)).shape
    torch.Size([1, 1, 16, 16])
    """
    recipe = complete_recipe(recipe)
    seed_all(seed)
    model = build_model(recipe)
    train_x, val_x = load_dataset(recipe, n_train, n_val, seed, data_dir)
    # Not the epochs: raising them continues a finished run (train()
    # records them itself).
    options = {'n_train': n_train, 'n_val': n_val,
               'batch_size': batch_size, 'lr': lr, 'seed': seed}
    # provenance: what made the run (not compared when it resumes)
    config = {'recipe': recipe, 'options': options,
              'provenance': {'family': 'generator',
                             'dataset': recipe['dataset']}}
    if command is not None:
        config['command'] = recorded_command(out_dir, config, command)
    kind = recipe['kind']
    if kind == 'score':  # denoising score matching, EMA weights
        kw = score_training(model, recipe)
        train(model, kw.pop('loss_fn'), train_x, out_dir=out_dir,
              epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
              val_data=val_x, config=config, resume=resume, progress=progress,
              checkpoint_every=checkpoint_every, log_every=log_every,
              steps=steps, device=device, **kw)
        return model.eval()
    common = dict(out_dir=out_dir, epochs=epochs, batch_size=batch_size,
                  seed=seed, val_data=val_x,
                  val_metric=_val_metric(kind, model),
                  config=config, resume=resume, progress=progress,
                  checkpoint_every=checkpoint_every, log_every=log_every,
                  steps=steps, device=device)
    if kind == 'gan':
        adam = functools.partial(torch.optim.Adam, lr=lr, betas=(0.0, 0.9))
        train(_gan_parts(model), None, train_x, step_fn=_gan_step_fn(model),
              optimizer={'critic': adam, 'generator': adam}, **common)
    else:
        train(model, _model_loss, train_x, lr=lr, **common)
    return model.eval()


def _read_config(run_dir):
    return read_run_config(run_dir, 'recipe',
                           'odl_genprior.generators.recipes.fit')


def load_run(run_dir, device='cpu'):
    """Rebuild a model from a run folder (``config.json`` + ``weights.pt``).

    Weights are read with ``torch.load(weights_only=True)``.
    """
    cfg = _read_config(run_dir)
    model = build_model(cfg['recipe'])
    target = _gan_parts(model) if cfg['recipe']['kind'] == 'gan' else model
    load_weights(target, Path(run_dir) / 'weights.pt')
    return model.to(device).eval()
