"""The exact sparse matrix of a linear ODL operator (`operator_matrix`):
bounded assembly, limits, the in-memory and on-disk cache."""
import hashlib
import json
import numbers
import time
import warnings
import weakref

import numpy as np
import odl
import scipy.sparse
import torch

from odl_genprior.bridge import per_sample
from odl_genprior.bridge.cache_files import (_read_cache_file,
                                             _write_cache_file, cache_dir)
from odl_genprior.bridge.convert import _base, space_dtype, space_weight


#: `operator_matrix` refuses a matrix of more nonzeros than this (about
#: 0.5 GB as float32 CSR, twice that while it is assembled).
MATRIX_MAX_NNZ = 2 ** 26
#: ... or one whose assembly is estimated to take longer than this
#: (seconds).
MATRIX_MAX_SECONDS = 1800.0
#: One dense block of unit vectors and their images stays under this many
#: bytes (the chunk shrinks for large operators, down to one vector).
MATRIX_BLOCK_BYTES = 64 * 2 ** 20
#: A progress bar is shown for an assembly expected to take longer (s).
MATRIX_PROGRESS_SECONDS = 5.0


class MatrixAssemblyTooSlow(RuntimeError):
    """`operator_matrix` estimates the assembly to take longer than
    `MATRIX_MAX_SECONDS`: apply the operator with ``batching='loop'``."""


class MatrixTooLarge(MemoryError):
    """`operator_matrix` estimates (or finds) more nonzeros than
    `MATRIX_MAX_NNZ`: apply the operator with ``batching='loop'``."""



# --- assembled operator matrices --------------------------------------------

def _floats(v):
    return np.asarray(v, dtype=np.float64).ravel().tolist()


def _operator_key(op):
    """The key (a JSON string) that names a ray transform's matrix, or None.

    Only ray transforms (which carry a ``geometry``) are keyed: for them the
    spaces, the geometry's angles, detector and radii and the backend fix
    the matrix. Other operators are cached in memory only. The whole key
    is stored in the cache file and compared on reading; the file name is
    its hash.
    """
    geom = getattr(op, 'geometry', None)
    if geom is None or not hasattr(geom, 'angles'):
        return None
    key = {'format': 'odl_genprior operator matrix v2',
           'operator': type(op).__name__, 'domain': repr(op.domain),
           'range': repr(op.range), 'impl': str(getattr(op, 'impl', '')),
           'geometry': type(geom).__name__,
           'det_partition': repr(geom.det_partition),
           'det_boundaries': [_floats(v) for v in
                              geom.det_partition.cell_boundary_vecs],
           'angles': _floats(geom.angles), 'odl': odl.__version__}
    for name in ('src_radius', 'det_radius', 'det_curvature_radius'):
        key[name] = repr(getattr(geom, name, None))
    for name in ('translation', 'det_axis_init', 'det_pos_init'):
        v = getattr(geom, name, None)
        key[name] = None if v is None else _floats(v)
    return json.dumps(key, sort_keys=True)


def _matrix_path(key):
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return cache_dir() / 'operators' / f'{digest}.npz'


_CSR_PARTS = ('data', 'indices', 'indptr', 'shape')


class _MatrixCache:
    """Assembled matrices by operator identity (memory) and key (disk)."""

    def __init__(self):
        self.by_id = weakref.WeakKeyDictionary()

    def get(self, op, disk):
        m = self.by_id.get(op)
        if m is not None:
            return m
        key = _operator_key(op) if disk else None
        if key is None:
            return None
        shape = (op.range.size, op.domain.size)

        def check(arrays):
            data, indices, indptr, stored = arrays
            if tuple(stored.tolist()) != shape:
                return (f'it holds a {tuple(stored.tolist())} matrix, '
                        f'not {shape}')
            if len(indptr) != shape[0] + 1 or len(indices) != len(data) or (
                    indptr[-1] != len(data)):
                return 'its CSR arrays do not fit together'
            return None

        arrays = _read_cache_file(_matrix_path(key), key, _CSR_PARTS, check)
        if arrays is None:
            return None
        data, indices, indptr, _ = arrays
        m = scipy.sparse.csr_matrix((data, indices, indptr), shape=shape)
        self.by_id[op] = m
        return m

    def put(self, op, m, disk):
        self.by_id[op] = m
        key = _operator_key(op) if disk else None
        if key is not None:  # a cache that cannot be written: memory only
            _write_cache_file(_matrix_path(key), key, {
                'data': m.data, 'indices': m.indices, 'indptr': m.indptr,
                'shape': np.array(m.shape, dtype=np.int64)})


_MATRICES = _MatrixCache()


def operator_matrix(operator, cache=True, chunk=256):
    """The Euclidean matrix of a linear ODL operator, as SciPy CSR.

    ``M[i, j] = (A e_j)_i`` on the flattened arrays (float32 or float64 as
    the domain). Assembled with one batched application per chunk of unit
    vectors, through rows (``A^T e_i``) or columns (``A e_j``), whichever
    are fewer; the dense matrix is never formed. A scaling (or identity)
    operator is written down, not assembled. Cached in memory per operator
    and, for ray transforms (keyed by spaces and geometry), on disk under
    `cache_dir`, so the next process does not assemble again.

    Limits (module attributes, so a caller may change them): one dense
    block of unit vectors and their images stays under
    `MATRIX_BLOCK_BYTES` (64 MB: the chunk shrinks, down to one vector).
    The first chunk (vectors spread over the whole index range) gives
    estimates of the nonzeros and the time; an assembly estimated at more
    than `MATRIX_MAX_NNZ` nonzeros (a MemoryError) or more than
    `MATRIX_MAX_SECONDS` (a `MatrixAssemblyTooSlow`) is refused at once,
    naming the shapes, the estimate and the limit; a longer one than
    `MATRIX_PROGRESS_SECONDS` shows a progress bar. The count is checked
    again while assembling (an estimate can be low).

    Parameters
    ----------
    operator : odl.Operator
        Linear, real.
    cache : bool, optional
        Read and write the on-disk cache.
    chunk : int, optional
        Most unit vectors per batched application.

    Raises
    ------
    MemoryError
        The matrix would have more than `MATRIX_MAX_NNZ` nonzeros: apply
        the operator with ``batching='loop'``.
    MatrixAssemblyTooSlow
        The assembly would take more than `MATRIX_MAX_SECONDS`.

    Examples
    --------
    >>> A = odl.MatrixOperator(np.array([[1.0, 2.0], [0.0, 3.0]]))
    >>> operator_matrix(A).toarray()
    array([[ 1.,  2.],
           [ 0.,  3.]])
    """
    if not getattr(operator, 'is_linear', False):
        raise ValueError(f'only a linear operator has a matrix, got '
                         f'{operator!r}')
    m = _MATRICES.get(operator, cache)
    if m is not None:
        return m
    m = _scaling_matrix(operator)
    if m is None:
        m = _assemble(operator, chunk)
    _MATRICES.put(operator, m, cache)
    return m


def _scaling_matrix(op):
    """``s I`` for an ``odl.ScalingOperator`` (identity included): known,
    so a 2048x2048 identity costs no assembly."""
    if not isinstance(op, odl.ScalingOperator) or op.domain != op.range:
        return None
    n = op.domain.size
    dtype = np.dtype(_base(op.domain).dtype_identifier)
    return scipy.sparse.identity(n, dtype=dtype, format='csr') * dtype.type(
        op.scalar)


def _describe(op):
    """One line naming an operator by its class and shapes (the repr of a
    ray transform spans several lines)."""
    return (f'{type(op).__name__} (domain shape {tuple(op.domain.shape)}, '
            f'range shape {tuple(op.range.shape)})')


def _check_estimate(op, nnz, seconds, itemsize):
    """Refuse an assembly whose estimate is over the limits, in one line."""
    if nnz > MATRIX_MAX_NNZ:
        gb = nnz * (itemsize + 4) / 1e9
        raise MatrixTooLarge(
            f'the matrix of {_describe(op)} would have about {nnz:.3g} '
            f'nonzeros (~{gb:.2g} GB as CSR, twice that to assemble), over '
            f'the limit MATRIX_MAX_NNZ = {MATRIX_MAX_NNZ}: use '
            f"batching='loop' (or raise odl_genprior.bridge.matrix.MATRIX_MAX_NNZ)")
    if seconds > MATRIX_MAX_SECONDS:
        raise MatrixAssemblyTooSlow(
            f'the matrix of {_describe(op)} would take about '
            f'{seconds / 60:.3g} min to assemble (estimated from the first '
            f'chunk), over the limit MATRIX_MAX_SECONDS = '
            f"{MATRIX_MAX_SECONDS:g}: use batching='loop' (or raise "
            'odl_genprior.bridge.matrix.MATRIX_MAX_SECONDS)')


def _assemble(operator, chunk):
    """Assemble the matrix from unit vectors, in bounded memory and time."""
    from tqdm.auto import tqdm
    n_in, n_out = operator.domain.size, operator.range.size
    dtype = space_dtype(operator.domain)
    itemsize = torch.empty((), dtype=dtype).element_size()

    def forward(e):
        return per_sample.apply_per_sample(operator, e)

    def transpose(e):  # Euclidean: W_dom A*(W_ran^{-1} e)
        w_dom = space_weight(operator.domain, e.device, e.dtype)
        w_ran = space_weight(operator.range, e.device, e.dtype)
        return per_sample.apply_per_sample(operator.adjoint,
                                           e / w_ran) * w_dom

    rows = n_out <= n_in  # rows of A are A^T e_i
    n, m, shape, apply = ((n_out, n_in, operator.range.shape, transpose)
                          if rows else
                          (n_in, n_out, operator.domain.shape, forward))
    if n == 0:
        return scipy.sparse.csr_matrix(
            (n_out, n_in), dtype=_base(operator.domain).dtype_identifier)
    # Bounded memory: one block of unit vectors (chunk, n) and of their
    # images (chunk, m) under MATRIX_BLOCK_BYTES.
    chunk = max(1, min(int(chunk), MATRIX_BLOCK_BYTES // ((n + m) * itemsize)))
    n_chunks = -(-n // chunk)
    # Chunk k holds vectors k, k + n_chunks, ...: spread over the whole
    # index range, the first chunk is a fair sample for the estimates (the
    # first rows of a sinogram are edge rays that miss the image).
    parts, order, nnz, bar = [], [], 0, None
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for k in range(n_chunks):
                idx = np.arange(k, n, n_chunks)
                e = torch.zeros((len(idx), n), dtype=dtype)
                e[torch.arange(len(idx)), torch.from_numpy(idx)] = 1
                block = apply(e.reshape((-1,) + tuple(shape)))
                del e
                part = scipy.sparse.csr_matrix(
                    block.reshape(len(idx), -1).cpu().numpy())
                del block
                nnz += part.nnz
                parts.append(part)
                order.append(idx)
                if k == 0 and n_chunks > 1:
                    seconds = (time.perf_counter() - start) * n_chunks
                    _check_estimate(operator, part.nnz / len(idx) * n,
                                    seconds, itemsize)
                    bar = tqdm(total=n, initial=len(idx),
                               unit=' rows' if rows else ' columns',
                               desc=f'matrix of {type(operator).__name__}',
                               disable=seconds <= MATRIX_PROGRESS_SECONDS)
                elif bar is not None:
                    bar.update(len(idx))
                if nnz > MATRIX_MAX_NNZ:
                    raise MatrixTooLarge(
                        f'the matrix of {_describe(operator)} has more than '
                        f'{nnz} nonzeros after {k + 1} of {n_chunks} chunks, '
                        f'over the limit MATRIX_MAX_NNZ = {MATRIX_MAX_NNZ}: '
                        f"use batching='loop'")
    finally:
        if bar is not None:
            bar.close()
    mat = scipy.sparse.vstack(parts, format='csr')
    del parts
    if n_chunks > 1:  # back to index order
        mat = mat[np.argsort(np.concatenate(order))]
    if not rows:
        mat = mat.T.tocsr()
    mat.sort_indices()
    return mat


def _torch_csr(m, device, dtype):
    with warnings.catch_warnings():  # 'sparse CSR tensor support is in beta'
        warnings.simplefilter('ignore', UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)),
            torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data), size=m.shape).to(device=device,
                                                       dtype=dtype)


def _adjoint_matrix(op, m):
    """The Euclidean matrix of ``op.adjoint`` from that of ``op``.

    ``A* = W_dom^{-1} M^T W_ran`` as an array map.
    """
    w_dom = space_weight(op.domain, 'cpu', torch.float64)
    w_ran = space_weight(op.range, 'cpu', torch.float64)
    mt = m.T.tocsr()
    if isinstance(w_dom, numbers.Number) and isinstance(w_ran,
                                                          numbers.Number):
        mt = mt * (w_ran / w_dom)
    else:
        d = np.broadcast_to(np.asarray(w_dom, dtype=np.float64).ravel()
                            if not isinstance(w_dom, numbers.Number)
                            else w_dom, (op.domain.size,))
        r = np.broadcast_to(np.asarray(w_ran, dtype=np.float64).ravel()
                            if not isinstance(w_ran, numbers.Number)
                            else w_ran, (op.range.size,))
        mt = scipy.sparse.diags(1 / d) @ mt @ scipy.sparse.diags(r)
    mt = scipy.sparse.csr_matrix(mt, dtype=m.dtype)
    mt.sort_indices()
    return mt
