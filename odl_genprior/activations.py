"""Pointwise activations by name: the one table the networks share.

Each entry is a torch module class and the Lipschitz constant ``S`` of its
function (``0 <= sigma' <= S``), which the structure-preserving ODE networks
need for their step-size bounds. The decoders, the skip network and the ODE
networks all read this table, so a name means one function everywhere and a
wrong name gets the same error.

Not to be confused with `odl_genprior.bregman.activations`: those are
proximal maps of convex functions (with their Bregman potentials), the
subject of the lifted-Bregman talk, not plain nonlinearities.

Examples
--------
>>> import torch
>>> activation('sigmoid')(torch.zeros(2))
tensor([0.5000, 0.5000])
>>> lipschitz('sigmoid')
0.25
>>> activation('softplus')
Traceback (most recent call last):
...
ValueError: unknown activation 'softplus'; choose one of ['none', 'relu', 'sigmoid', 'tanh']
"""

from torch import nn

__all__ = ('ACTIVATIONS', 'activation', 'lipschitz')

#: name -> (module class, Lipschitz constant S); all have 0 <= sigma' <= S.
#: ``None`` is read as ``'none'`` (the identity).
ACTIVATIONS = {
    'relu': (nn.ReLU, 1.0),
    'tanh': (nn.Tanh, 1.0),
    'sigmoid': (nn.Sigmoid, 0.25),
    'none': (nn.Identity, 1.0),
}


def _entry(name):
    key = 'none' if name is None else name
    if not isinstance(key, str) or key not in ACTIVATIONS:
        raise ValueError(f'unknown activation {name!r}; choose one of '
                         f'{sorted(ACTIVATIONS)}')
    return ACTIVATIONS[key]


def activation(name):
    """A new module applying the activation ``name``.

    Parameters
    ----------
    name : str or None
        A key of `ACTIVATIONS`; ``None`` means ``'none'`` (identity).

    Raises
    ------
    ValueError
        If ``name`` is not in the table; the message lists the choices.

    Examples
    --------
    >>> activation(None)
    Identity()
    """
    return _entry(name)[0]()


def lipschitz(name):
    """The Lipschitz constant ``S`` of the activation ``name``.

    Examples
    --------
    >>> lipschitz('tanh')
    1.0
    """
    return _entry(name)[1]
