r"""Daubechies multiresolution analysis: the integrals of phi a CGNN needs.

A CGNN (`odl_genprior.generators.cgnn`) works on the scaling coefficients
of an orthonormal multiresolution analysis (MRA) with a compactly supported
scaling function :math:`\varphi` (PyWavelets' ``dbN``, ``symN``, ``coifN``
or ``haar``). Two families of numbers, both integrals of products of
:math:`\varphi`, turn its continuous operations into discrete ones on the
coefficients:

* the **convolution filter** :math:`\beta_d(k) = \iint \varphi(u)\,
  \varphi(v - 2^d u)\,\varphi(v - k)\,du\,dv`: continuous convolution of a
  :math:`V_j` function with a :math:`V_{j+d}` filter, followed by the
  orthogonal projection onto :math:`V_{j+d}`, is a stride-:math:`2^d`
  transposed convolution of the coefficients with the filter's coefficients
  followed by convolution with :math:`\beta_d` (see
  `DaubechiesMRA.conv_filter`);
* the **antiderivative** :math:`P(x) = \int_{-\infty}^x \varphi`: the
  average of :math:`\varphi_{j,k}` over any cell is a difference of two
  values of :math:`P` (see `DaubechiesMRA.cell_average_matrix`).

Both are computed exactly (to rounding) from the refinement equation
:math:`\varphi(x) = \sum_a p_a \varphi(2x - a)`, :math:`p = \sqrt 2\,`
``rec_lo``; the quadrature from ``pywt.Wavelet(name).wavefun`` is kept as
an independent check (``method='quadrature'``).

Conventions. :math:`\varphi_{j,k}(x) = 2^{j/2}\varphi(2^j x - k)`,
:math:`\operatorname{supp}\varphi = [0, L]`, :math:`L = 2N - 1` for
``dbN``. Level :math:`j` on the unit interval has :math:`2^j` coefficients;
array index :math:`i` holds translation :math:`k = i - s` with
:math:`s = \operatorname{round}(\mu - 1/2)`, :math:`\mu = \int x\varphi`,
which puts the centroid of :math:`\varphi_{j,k}` within half a cell of the
centre of the :math:`i`-th cell of :math:`[0, 1]`. Boundary ``'periodic'``: the
functions are periodised, :math:`\varphi^{per}_{j,k} = \sum_r
\varphi_{j,k}(\cdot + r)` (orthonormal for every :math:`j \ge 0`).
Boundary ``'zero'``: the functions are those of :math:`L^2(\mathbb R)`
(orthonormal, supported slightly beyond :math:`[0, 1]`).
"""
import functools
import math

import numpy as np
import pywt

__all__ = ('DaubechiesMRA', 'haar_conv_filter')

BOUNDARIES = ('periodic', 'zero')


def haar_conv_filter(d=1):
    r"""Closed form of the convolution filter :math:`\beta_d` for Haar (db1).

    With :math:`\varphi = 1_{[0,1)}`, :math:`\Theta_d(w) = \int \varphi(u)
    \varphi(w - 2^d u)\,du` is the trapezoid :math:`2^{-d}\,|[w-1, w] \cap
    [0, 2^d]|`, and :math:`\beta_d(k) = \int_k^{k+1}\Theta_d` is
    :math:`2^{-d-1}` for :math:`k \in \{0, 2^d\}` and :math:`2^{-d}` for
    :math:`0 < k < 2^d`.

    Parameters
    ----------
    d : int
        Scale jump :math:`\ge 1` (stride :math:`2^d`).

    Returns
    -------
    first : int
        Translation of the first value (0).
    values : numpy.ndarray
        :math:`\beta_d(0), \dots, \beta_d(2^d)`.

    Examples
    --------
    >>> first, values = haar_conv_filter(1)
    >>> first, values.tolist()
    (0, [0.25, 0.5, 0.25])
    """
    d = _check_d(d)
    values = np.full(2 ** d + 1, 2.0 ** -d)
    values[[0, -1]] = 2.0 ** (-d - 1)
    return 0, values


def _check_d(d):
    if int(d) != d or d < 1:
        raise ValueError(f'scale jump `d` must be an integer >= 1, got {d!r}')
    return int(d)


@functools.lru_cache(maxsize=None)
def _wavelet_data(name):
    w = pywt.Wavelet(name)
    if not w.orthogonal or w.family_name not in (
            'Haar', 'Daubechies', 'Symlets', 'Coiflets'):
        raise ValueError(
            f'wavelet {name!r} is not an orthogonal compactly supported '
            "wavelet ('haar', 'dbN', 'symN' or 'coifN')")
    mask = math.sqrt(2.0) * np.asarray(w.rec_lo, dtype=float)
    return w.name, mask


@functools.lru_cache(maxsize=None)
def _antiderivative_table(name, level):
    """Exact values of P = int phi on the dyadic grid of spacing 2**-level."""
    _, p = _wavelet_data(name)
    L = len(p) - 1
    # Integers: P(n) = 1/2 sum_a p_a P(2n - a), P = 0 left of 0, 1 right
    # of L; a linear system in P(1), ..., P(L-1) (eigenvalues of the halved
    # two-scale matrix are <= 1/2, so it is well posed).
    n_in = L - 1
    A = np.eye(n_in)
    rhs = np.zeros(n_in)
    for r in range(n_in):
        for a in range(L + 1):
            m = 2 * (r + 1) - a
            if 1 <= m <= L - 1:
                A[r, m - 1] -= 0.5 * p[a]
            elif m >= L:
                rhs[r] += 0.5 * p[a]
    table = np.concatenate([[0.0], np.linalg.solve(A, rhs) if n_in else [],
                            [1.0]])
    # Dyadic refinement: P(i/2^l) = 1/2 sum_a p_a P((i - a 2^(l-1))/2^(l-1)).
    for lev in range(1, level + 1):
        half = 2 ** (lev - 1)
        size = L * 2 ** lev + 1
        # Pad with P = 0 on the left and P = 1 on the right of the old grid.
        ext = np.concatenate([np.zeros(L * half + 1), table,
                              np.ones(size + L * half + 1)])
        i = np.arange(size)
        new = np.zeros(size)
        for a in range(L + 1):
            new += 0.5 * p[a] * ext[(i - a * half) + L * half + 1]
        new[[0, -1]] = 0.0, 1.0  # exact ends (rounding drifts otherwise)
        table = new
    return table


def _beta_refinement(name, d):
    """beta_d as the eigenvector (eigenvalue 1) of its refinement matrix."""
    _, p = _wavelet_data(name)
    L = len(p) - 1
    first, last = -(L - 1), (2 ** d + 1) * L - 1
    size = last - first + 1
    # q[e] = sum over c - 2^d a - b = e of p_a p_b p_c (index e - e_min).
    up = np.zeros(L * 2 ** d + 1)
    up[::2 ** d] = p
    q = np.convolve(np.convolve(p, p[::-1]), up[::-1])
    e_min = -(2 ** d) * L - L
    k = np.arange(first, last + 1)
    # beta(k) = 1/4 sum_e q[e] beta(2k + e): M[k, k'] = q[k' - 2k] / 4.
    e = k[None, :] - 2 * k[:, None] - e_min
    valid = (e >= 0) & (e < len(q))
    M = np.where(valid, q[np.clip(e, 0, len(q) - 1)], 0.0) / 4
    _, sv, vt = np.linalg.svd(M - np.eye(size))
    if size > 1 and sv[-2] < 1e-8 * sv[0]:
        raise ArithmeticError(f'the refinement equation of beta_{d} for '
                              f'{name!r} has no unique solution')
    beta = vt[-1] / vt[-1].sum()  # normalisation: sum_k beta(k) = 1
    return first, beta


def _beta_quadrature(name, d, level):
    """beta_d by Riemann sums of PyWavelets' cascade samples of phi."""
    phi = pywt.Wavelet(name).wavefun(level=level)[0]
    h = 2.0 ** -level
    L = len(_wavelet_data(name)[1]) - 1
    up = np.zeros((len(phi) - 1) * 2 ** d + 1)
    up[::2 ** d] = phi
    theta = h * np.convolve(up, phi) if len(phi) < 4096 else h * _fftconv(
        up, phi)
    first, last = -(L - 1), (2 ** d + 1) * L - 1
    step = 2 ** level  # integer shifts in grid units
    beta = np.empty(last - first + 1)
    for idx, k in enumerate(range(first, last + 1)):
        # sum_l theta[l] phi[l - k*step], over the overlap of both arrays.
        lo = max(0, k * step)
        hi = min(len(theta), k * step + len(phi))
        beta[idx] = h * np.dot(theta[lo:hi], phi[lo - k * step:hi - k * step])
    return first, beta


def _fftconv(a, b):
    from scipy.signal import fftconvolve
    return fftconvolve(a, b)


@functools.lru_cache(maxsize=None)
def _beta_cached(name, d, method, level):
    if method == 'refinement':
        first, beta = _beta_refinement(name, d)
    elif method == 'quadrature':
        first, beta = _beta_quadrature(name, d, level)
    else:
        raise ValueError("`method` must be 'refinement' or 'quadrature', "
                         f'got {method!r}')
    # Trim exact zeros at the ends (Haar has support [0, 2^d]).
    nz = np.flatnonzero(np.abs(beta) > 1e-15 * np.abs(beta).max())
    beta = beta[nz[0]:nz[-1] + 1]
    beta.setflags(write=False)
    return first + int(nz[0]), beta


class DaubechiesMRA:
    r"""An orthonormal compactly supported MRA and the integrals of its phi.

    Parameters
    ----------
    wavelet : str
        PyWavelets name of an orthogonal compactly supported wavelet:
        ``'haar'``/``'db1'``, ``'dbN'``, ``'symN'``, ``'coifN'``.

    Attributes
    ----------
    name : str
        PyWavelets name.
    mask : numpy.ndarray
        Refinement coefficients :math:`p_a = \sqrt 2\,` ``rec_lo[a]``, with
        :math:`\varphi(x) = \sum_a p_a \varphi(2x - a)`.
    support : int
        :math:`L`: :math:`\operatorname{supp}\varphi = [0, L]`.
    centroid : float
        :math:`\mu = \int x\varphi(x)\,dx = \tfrac12\sum_a a\,p_a`
        (from the refinement equation).
    shift : int
        :math:`s = \operatorname{round}(\mu - 1/2)`: coefficient index
        :math:`i` holds translation :math:`k = i - s`, so that the centroid
        of :math:`\varphi_{j,k}` is the centre of the :math:`i`-th cell.

    Examples
    --------
    >>> mra = DaubechiesMRA('db2')
    >>> mra.support, mra.shift, round(mra.centroid, 6)
    (3, 0, 0.633975)
    >>> DaubechiesMRA('db10').shift
    2
    >>> round(float(mra.mask.sum()), 12)  # sum_a p_a = 2
    2.0
    """

    def __init__(self, wavelet='db2'):
        self.name, self.mask = _wavelet_data(str(wavelet))
        self.support = len(self.mask) - 1
        # Daubechies phi is far from symmetric: centre by its centroid.
        self.centroid = float(0.5 * np.arange(len(self.mask)) @ self.mask)
        self.shift = int(round(self.centroid - 0.5))

    def __repr__(self):
        return f'DaubechiesMRA({self.name!r})'

    def scaling_function(self, level=10):
        """Samples of phi on ``[0, L]`` from ``pywt.Wavelet.wavefun``.

        Parameters
        ----------
        level : int
            Cascade iterations; the grid spacing is ``2**-level``.

        Returns
        -------
        x, phi : numpy.ndarray

        Examples
        --------
        >>> x, phi = DaubechiesMRA('db2').scaling_function(level=4)
        >>> float(x[1]), round(float(phi.sum() * x[1]), 6)
        (0.0625, 1.0)
        """
        phi, _, x = pywt.Wavelet(self.name).wavefun(level=level)
        return np.asarray(x), np.asarray(phi)

    def conv_filter(self, d=1, method='refinement', level=12):
        r"""The filter :math:`\beta_d` of continuous convolution + projection.

        Derivation. Let :math:`f = \sum_s a_s \varphi_{j,s} \in V_j` and a
        filter :math:`g = \sum_m t_m \varphi_{j+d,m} \in V_{j+d}`. With
        :math:`u = 2^j y - s`,

        .. math::
            (\varphi_{j,s} * \varphi_{j+d,m})(x) = 2^{d/2}\,
            \Theta_d(2^{j+d}x - 2^d s - m), \quad
            \Theta_d(w) = \int \varphi(u)\,\varphi(w - 2^d u)\,du,

        and :math:`\langle \Theta_d(2^{j+d}\cdot - r), \varphi_{j+d,n}\rangle
        = 2^{-(j+d)/2}\beta_d(n - r)` with :math:`\beta_d(k) = \int
        \Theta_d(v)\varphi(v - k)\,dv`. Hence the coefficients of
        :math:`P_{V_{j+d}}(f * g)` are

        .. math::
            c_n = 2^{-j/2} \sum_{s, m} a_s\, t_m\, \beta_d(n - 2^d s - m)
            = 2^{-j/2}\,\big(\beta_d * t * (a\uparrow 2^d)\big)_n .

        ``'refinement'`` (exact): substituting the refinement equation in
        all three factors gives :math:`\beta_d(k) = \tfrac14 \sum_{a,b,c}
        p_a p_b p_c\, \beta_d(2k + c - 2^d a - b)`; :math:`\beta_d` is the
        eigenvector for eigenvalue 1 normalised by :math:`\sum_k \beta_d(k) =
        \int\Theta_d = 1`. ``'quadrature'``: Riemann sums of both integrals
        on the ``wavefun`` grid (accurate to about ``2**-level``).

        Parameters
        ----------
        d : int
            Scale jump :math:`\ge 1`.
        method : {'refinement', 'quadrature'}
        level : int
            Cascade level for ``'quadrature'``.

        Returns
        -------
        first : int
            Translation :math:`k` of ``values[0]``.
        values : numpy.ndarray
            :math:`\beta_d(\text{first}), \beta_d(\text{first} + 1), \dots`
            (read-only, cached).

        Examples
        --------
        >>> first, beta = DaubechiesMRA('haar').conv_filter(1)
        >>> first, beta.round(12).tolist()
        (0, [0.25, 0.5, 0.25])
        >>> first, beta = DaubechiesMRA('db2').conv_filter(1)
        >>> first, len(beta), round(float(beta.sum()), 12)
        (-2, 11, 1.0)
        """
        d = _check_d(d)
        return _beta_cached(self.name, d, method, int(level))

    def antiderivative(self, x, level=14):
        r""":math:`P(x) = \int_{-\infty}^x \varphi(t)\,dt`.

        Exact (to rounding) at the dyadic points ``i * 2**-level``, from the
        refinement equation :math:`P(x) = \tfrac12 \sum_a p_a P(2x - a)`
        (integer values from a linear system, then one dyadic level at a
        time); linear interpolation in between.

        Parameters
        ----------
        x : array-like
        level : int
            Dyadic level of the exact table.

        Returns
        -------
        numpy.ndarray

        Examples
        --------
        >>> mra = DaubechiesMRA('db2')
        >>> mra.antiderivative([-1.0, 3.0, 10.0]).tolist()
        [0.0, 1.0, 1.0]
        >>> round(float(DaubechiesMRA('haar').antiderivative(0.375)), 12)
        0.375
        """
        table = _antiderivative_table(self.name, int(level))
        grid = np.linspace(0.0, self.support, len(table))
        return np.interp(np.asarray(x, dtype=float), grid, table, left=0.0,
                         right=1.0)

    def cell_integral_matrix(self, j, edges, boundary='periodic', level=None):
        r"""Integrals of the level-``j`` basis functions over cells.

        Entry ``[i, c]`` is :math:`\int_{e_i}^{e_{i+1}} \varphi_{j,k}` with
        :math:`k = c - s`:
        :math:`2^{-j/2}\,[P(2^j e_{i+1} - k) - P(2^j e_i - k)]`, summed over
        the periodic images :math:`k - 2^j r` for ``'periodic'``.

        Parameters
        ----------
        j : int
            Level (:math:`2^j` coefficients).
        edges : array-like
            Increasing cell edges in :math:`[0, 1]`.
        boundary : {'periodic', 'zero'}
        level : int, optional
            Dyadic level of the table of :math:`P`; default: fine enough
            that edges :math:`i/M` with :math:`M` a power of two are exact.

        Returns
        -------
        numpy.ndarray
            Shape ``(len(edges) - 1, 2**j)``.

        Examples
        --------
        >>> m = DaubechiesMRA('haar').cell_integral_matrix(1, [0, 0.25, 1])
        >>> (m * 2 ** 0.5).round(12) + 0.0  # columns phi_{1,0}, phi_{1,1}
        array([[ 0.5,  0. ],
               [ 0.5,  1. ]])
        """
        if boundary not in BOUNDARIES:
            raise ValueError(f'`boundary` must be one of {BOUNDARIES}, got '
                             f'{boundary!r}')
        edges = np.asarray(edges, dtype=float)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError('`edges` must be an increasing 1D sequence of at '
                             'least two points')
        n = 2 ** int(j)
        if level is None:
            level = _level_for(len(edges) - 1, n)
        k = np.arange(n) - self.shift
        t = n * edges[:, None] - k[None, :]  # (edges, coefficients)
        if boundary == 'zero':
            shifts = [0]
        else:
            # Images phi(t + n r) that meet [0, L] for some edge.
            shifts = range(int(np.floor(-t.max() / n)) - 1,
                           int(np.ceil((self.support - t.min()) / n)) + 2)
        P = np.zeros_like(t)
        for r in shifts:
            P += self.antiderivative(t + n * r, level)
        return 2.0 ** (-int(j) / 2) * np.diff(P, axis=0)

    def cell_average_matrix(self, j, n_cells, boundary='periodic'):
        r"""Averages of the level-``j`` basis over ``n_cells`` equal cells.

        Row :math:`i` averages over :math:`[i/M, (i+1)/M]`, :math:`M =`
        ``n_cells``, any :math:`M` (finer or coarser than :math:`2^j`).
        Averages over finer cells average exactly to those over coarser
        cells (the edges are shared and the sums telescope).

        Parameters
        ----------
        j : int
        n_cells : int
        boundary : {'periodic', 'zero'}

        Returns
        -------
        numpy.ndarray
            Shape ``(n_cells, 2**j)``.

        Examples
        --------
        >>> mra = DaubechiesMRA('db2')
        >>> R = mra.cell_average_matrix(3, 16)
        >>> c = np.full(8, 2 ** -1.5)  # the constant 1 in V_3
        >>> bool(np.allclose(R @ c, 1.0))
        True
        """
        M = int(n_cells)
        if M < 1:
            raise ValueError(f'`n_cells` must be >= 1, got {n_cells!r}')
        edges = np.arange(M + 1) / M
        return M * self.cell_integral_matrix(j, edges, boundary)


def _level_for(n_cells, n_coeffs):
    """Table level making edges i/n_cells dyadic-exact when possible."""
    need = math.ceil(math.log2(max(n_cells / n_coeffs, 1.0)))
    return int(min(max(14, need), 22))
