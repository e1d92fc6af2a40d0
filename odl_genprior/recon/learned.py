"""Learned (trained end-to-end) reconstruction under the contract.

`LearnedReconstructor` applies any torch module that maps a batch of data
``(B, *A.range.shape)`` to images ``(B, *A.domain.shape)`` (an unrolled
network from `odl_genprior.nn.unrolled`) to a `ForwardProblem`; shipped
networks load by name with ``LearnedReconstructor.pretrained``. Training,
loading and shipping the networks is the model family
`odl_genprior.models.unrolled`.
"""
import torch

from odl_genprior.bridge import as_element, as_tensor, space_dtype
from odl_genprior.models.unrolled import (PRETRAINED_DIR, _display_name,
                                          build_unrolled, pretrained_for,
                                          pretrained_unrolled, protocol_of)
from odl_genprior.problems.ellipse_ct import EllipseCT  # noqa: F401 (doctests)
from odl_genprior.problems.operator_match import operator_differences
from odl_genprior.recon.base import Reconstructor, check_batch, check_flag
from odl_genprior.training import read_run_config

__all__ = ('LearnedReconstructor',)


class LearnedReconstructor(Reconstructor):
    """A trained data-to-image network as a reconstruction method.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, *range.shape)`` to ``(B, *domain.shape)`` tensors of the
        problem's operator; an unrolled network also carries its own
        ``operator``, which must have the problem's shapes.
    name : str, optional
        Name in tables (default: the model's class name, plus its group).
    allow_other_operator : bool, optional
        A network that carries its operator (``model.operator``) refuses a
        problem whose operator is another one (grid, angles, detector,
        geometry: `odl_genprior.problems.operator_match`), naming what
        differs. True runs its weights on the problem's operator instead
        (the network is rebuilt over it from ``model.config``): a study of
        how a network generalises, not a trained method.

    Examples
    --------
    >>> from odl_genprior.nn.unrolled import LearnedGradientDescent
    >>> bench = EllipseCT(size=16, num_angles=8)
    >>> net = LearnedGradientDescent(bench.operator, n_iter=2,
    ...                              hidden_channels=4)
    >>> x = LearnedReconstructor(net)(bench.problem(0), progress=False)
    >>> x.shape
    (16, 16)
    """

    def __init__(self, model, name=None, allow_other_operator=False):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f'model must be a torch.nn.Module, got '
                            f'{type(model).__name__}')
        self.model = model
        self.allow_other_operator = check_flag(
            'LearnedReconstructor', 'allow_other_operator',
            allow_other_operator)
        self._rebuilt = (None, None)  # (operator, the network over it)
        if name is None:
            name = type(model).__name__
            group = getattr(model, 'group', None)
            name += f' ({group})' if group else ''
        self.name = name

    @classmethod
    def pretrained(cls, name, device='cpu', allow_other_operator=False):
        """The method of a shipped network (`pretrained_unrolled`).

        Named after the network's scheme (``'learned PD'``, ...), and its
        shipped name too where two networks of one scheme ship
        (``'learned PD (dival-lpd-long-128)'``).

        Examples
        --------
        >>> LearnedReconstructor.pretrained('no-such-model')
        Traceback (most recent call last):
        ...
        KeyError: "no shipped unrolled network 'no-such-model'; available: [...]"
        """
        model = pretrained_unrolled(name, device=device)
        label = _display_name(model.config)
        # two shipped networks of one scheme (a longer run beside the
        # first): tell them apart by name
        protocol = protocol_of(model.config)
        same = [n for n in pretrained_for(protocol) if n != name and
                _display_name(read_run_config(
                    PRETRAINED_DIR / n, 'unrolled',
                    'train_unrolled')['unrolled']) == label]
        return cls(model, name=f'{label} ({name})' if same else label,
                   allow_other_operator=allow_other_operator)

    def __repr__(self):
        m = self.model
        opts = ', '.join(f'{k}={getattr(m, k)!r}' for k in
                         ('n_iter', 'group') if hasattr(m, k))
        return (f'LearnedReconstructor(model={type(m).__name__}({opts}), '
                f'name={self.name!r})')

    def _network_for(self, A):
        """The model, or (``allow_other_operator``) the model over ``A``."""
        op = getattr(self.model, 'operator', None)
        if op is None or op is A:
            return self.model
        diff = operator_differences(op, A)
        if not diff:
            return self.model
        if not self.allow_other_operator:
            raise ValueError(
                f'{self.name} was trained for another operator: '
                + '; '.join(diff) + '. Reconstruct problems of its own '
                'protocol, or pass allow_other_operator=True to run its '
                'weights on this operator')
        if self._rebuilt[0] is not A:  # the last operator's network is kept
            config = getattr(self.model, 'config', None)
            if config is None:
                raise ValueError(f'{self.name} has no config: it cannot be '
                                 'rebuilt over another operator')
            net = build_unrolled(config, A)
            net.load_state_dict(self.model.state_dict())
            param = next(self.model.parameters())
            self._rebuilt = (A, net.to(param.device))
        return self._rebuilt[1]

    def reconstruct_batch(self, operator, y):
        """Reconstruct a batch of data of ``operator`` in one forward pass.

        ``y`` is a tensor ``(B, *operator.range.shape)``; returns ``(B,
        *operator.domain.shape)`` on ``y``'s device. The same checks as
        ``reconstruct`` (the network's own operator, unless
        ``allow_other_operator``); what `odl_genprior.interop.deepinv`'s
        solvers call for a whole batch.

        Examples
        --------
        >>> from odl_genprior.nn.unrolled import LearnedPrimalDual
        >>> A = EllipseCT(size=16, num_angles=8).operator
        >>> method = LearnedReconstructor(LearnedPrimalDual(
        ...     A, n_iter=1, hidden_channels=4))
        >>> method.reconstruct_batch(A, torch.rand(3, *A.range.shape)).shape
        torch.Size([3, 16, 16])
        """
        check_batch(self.name, operator, y)
        model = self._model_for(operator)
        param = next(model.parameters(), None)
        device = param.device if param is not None else y.device
        dtype = param.dtype if param is not None else torch.float32
        model.eval()
        with torch.no_grad():
            x = model(y.to(device=device, dtype=dtype))
        return x.to(y.device)

    def _model_for(self, A):
        """`_network_for`, with the shapes checked."""
        model = self._network_for(A)
        op = getattr(model, 'operator', None)
        if op is not None and (op.domain.shape != A.domain.shape
                               or op.range.shape != A.range.shape):
            raise ValueError(
                f'{self.name} was built for an operator {op.domain.shape} -> '
                f'{op.range.shape}, the problem has {A.domain.shape} -> '
                f'{A.range.shape}')
        return model

    def _reconstruct(self, problem, progress):
        A = problem.operator
        model = self._model_for(A)
        param = next(model.parameters(), None)
        device = param.device if param is not None else 'cpu'
        dtype = param.dtype if param is not None else torch.float32
        y = as_tensor(problem.data, device=device, dtype=dtype)[None]
        model.eval()
        with torch.no_grad():
            x = model(y)[0]
        if tuple(x.shape) != tuple(A.domain.shape):
            raise ValueError(f'{self.name} returned shape {tuple(x.shape)}, '
                             f'the problem space has {A.domain.shape}')
        return as_element(x.to(space_dtype(problem.space)), problem.space)
