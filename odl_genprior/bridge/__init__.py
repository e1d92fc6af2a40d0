"""The torch <-> ODL bridge, both directions; the only place that converts.

* `TorchOperator` makes a ``torch.nn.Module`` an ODL `Operator`: its
  derivative is the Jacobian-vector product and the derivative's adjoint the
  vector-Jacobian product, both from torch autograd.
* `OperatorLayer` makes an ODL `Operator` (e.g. a ``RayTransform``) a torch
  module with autograd, on batches ``(B, *op.domain.shape)``.

Inner products. ODL spaces may be weighted (``uniform_discr`` carries the
cell volume), so the ODL adjoint of a module's Jacobian ``J`` is
``D* w = W_dom^{-1} J^T (W_ran w)`` and, the other way, the torch gradient
(plain Euclidean ``J^T g``) of an ODL operator is
``W_dom A*(W_ran^{-1} g)``. Both conversions live here.

Modules: `convert` (elements, tensors, devices, dtypes, weights),
`torch_operator` (`TorchOperator`), `layer` (`OperatorLayer`), `per_sample`
(an operator on each sample of a batch: the layer's ``'loop'`` mode and the
matrix assembly), `matrix` (`operator_matrix`, its limits and cache),
`cache_files` (verified cache files). Everything public is imported here (``from odl_genprior.bridge
import OperatorLayer``); a limit is changed in its own module
(``odl_genprior.bridge.matrix.MATRIX_MAX_NNZ``).
"""
from odl_genprior.bridge.cache_files import (  # noqa: F401
    _arrays_digest, _discard_cache_file, _read_cache_file, _write_cache_file,
    cache_dir)
from odl_genprior.bridge.convert import (  # noqa: F401
    _check_input, _is_pytorch, as_element, as_tensor, module_device,
    space_device, space_dtype, space_weight, to_numpy)
from odl_genprior.bridge.layer import (  # noqa: F401
    AUTO_MATRIX_MAX_SIZE, BATCHING_MODES, OperatorLayer, check_tensor_operator)
from odl_genprior.bridge.per_sample import apply_per_sample  # noqa: F401
from odl_genprior.bridge.matrix import (  # noqa: F401
    _MATRICES, MATRIX_BLOCK_BYTES, MATRIX_MAX_NNZ, MATRIX_MAX_SECONDS,
    MATRIX_PROGRESS_SECONDS, MatrixAssemblyTooSlow, MatrixTooLarge,
    _assemble, _matrix_path, _operator_key, operator_matrix)
from odl_genprior.bridge.torch_operator import (  # noqa: F401
    TorchOperator, module_state)

__all__ = ('TorchOperator', 'OperatorLayer', 'check_tensor_operator',
           'BATCHING_MODES',
           'operator_matrix', 'MatrixAssemblyTooSlow', 'MatrixTooLarge',
           'cache_dir',
           'as_tensor', 'as_element',
           'module_state', 'to_numpy', 'space_device', 'space_dtype',
           'space_weight', 'module_device')
