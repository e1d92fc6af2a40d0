"""Seeds of a run: torch, NumPy and Python RNGs from ``(seed, rank)``, the
data order of an epoch from ``(seed, epoch)`` alone, RNG states for
checkpoints."""
import random

import numpy as np
import torch

__all__ = ('seed_all',)


# --- seeding ----------------------------------------------------------------


def _derive_seed(*keys):
    """A 32-bit seed from non-negative integers (independent streams)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(
        1)[0])


def seed_all(seed):
    """Seed the torch (CPU and CUDA), NumPy and Python global RNGs.

    Call it before building a model so that its initialization is
    reproducible; `train` reseeds by itself at the start of a fresh run.

    Parameters
    ----------
    seed : int
        Non-negative.

    Examples
    --------
    >>> seed_all(3)
    >>> a = torch.rand(2)
    >>> seed_all(3)
    >>> torch.equal(a, torch.rand(2))
    True
    """
    seed = _check_seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


def _check_seed(seed):
    if (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
            or seed < 0):
        raise ValueError(f'`seed` must be a non-negative int, got {seed!r}')
    return int(seed)


def _rng_state(device):
    """Every global RNG state, as tensors and plain numbers (weights_only)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, pystate, gauss_next = random.getstate()
    state = {
        'torch': torch.get_rng_state(),
        'numpy': {'keys': torch.from_numpy(keys.astype(np.int64)),
                  'pos': int(pos), 'has_gauss': int(has_gauss),
                  'cached_gaussian': float(cached)},
        'python': {'version': int(version),
                   'state': torch.tensor(pystate, dtype=torch.int64),
                   'gauss_next': gauss_next},
        'cuda': None,
    }
    if device.type == 'cuda':
        state['cuda'] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state, device):
    torch.set_rng_state(state['torch'])
    npst = state['numpy']
    np.random.set_state(('MT19937', npst['keys'].numpy().astype(np.uint32),
                         npst['pos'], npst['has_gauss'],
                         npst['cached_gaussian']))
    pyst = state['python']
    random.setstate((pyst['version'], tuple(pyst['state'].tolist()),
                     pyst['gauss_next']))
    if device.type == 'cuda' and state['cuda'] is not None:
        torch.cuda.set_rng_state(state['cuda'], device)


def _epoch_order(seed, epoch, n, shuffle):
    """The sample order of one epoch: a function of (seed, epoch) only."""
    if not shuffle:
        return torch.arange(n)
    gen = torch.Generator()
    gen.manual_seed(_derive_seed(seed, epoch, 1))
    return torch.randperm(n, generator=gen)
