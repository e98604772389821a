"""Optimizer-state storage as sympy expressions: the single source of truth (spec/state_storage.md).

The general formulas use indexed symbols and symbolic sizes, so the docs print them as
written. A factored state is viewed row-major as a ``d1 x d2`` matrix (``d1 >= d2``), rows
``i``, columns ``j``. The 8-bit and 4-bit codes are in ``spec.codes``.
The functions below instantiate the formulas for small concrete sizes (the ``proof_*``
functions, run by conformance/test_spec_storage.py) or expose one stage each for
``sympy.lambdify`` (compared there with ``reference.storage`` on arrays). The constants and
the decisions (which format a state gets) live in ``spec.storage_layout``, which ``fast``
imports without sympy.
"""

from __future__ import annotations

import sympy as sp
from sympy.concrete.expr_with_limits import ExprWithLimits

from spec.hparams.storage import CONSTRAINTS
from spec.hparams.storage import STORAGE as HYPERPARAMETERS
from spec.storage_layout import NORM_FLOOR, Format

__all__ = [
    "COL_FACTOR", "COL_SUM", "CONSTRAINTS", "FACTOR_D2", "FP16_FLUSH_G", "FP16_TINY",
    "FP16_UNDERFLOW_G", "HYPERPARAMETERS", "ITEMSIZE", "PACKED", "PARAM_SHAPE", "RECONSTRUCTION",
    "ROW_SUM", "SIGNED_RECONSTRUCTION", "UNPACKED", "VALUES", "Maximum", "factor_shape",
    "factorize", "proof_marginals_preserved", "proof_quantisation_error", "proof_rank1_exact",
    "proof_signed_rank1_exact", "proof_stochastic_floor_unbiased", "proof_zero_matrix", "reconstruct",
    "stored_bytes", "stored_tensors",
]


class Maximum(ExprWithLimits):
    """``max`` of ``function`` over an integer range, the way ``Sum`` adds over one.

    ``Maximum(f, (k, lo, hi))`` is the largest ``f`` for ``lo <= k <= hi`` (both inclusive,
    as for ``Sum``). ``doit()`` expands it once the bounds are integers; lambdify prints it as
    a Python ``max`` over a generator.
    """

    __slots__ = ()

    def doit(self, **hints):
        ((var, lo, hi),) = self.limits
        if not (lo.is_Integer and hi.is_Integer):
            return self
        terms = [self.function.xreplace({var: sp.Integer(v)}) for v in range(int(lo), int(hi) + 1)]
        if all(t.is_Number for t in terms):
            return max(terms)
        return sp.Max(*terms)

    def _latex(self, printer) -> str:
        ((var, lo, hi),) = self.limits
        body = printer.parenthesize(self.function, 1000)
        return rf"\max_{{{printer._print(lo)} \le {printer._print(var)} \le {printer._print(hi)}}} {body}"

    def _numpycode(self, printer) -> str:
        ((var, lo, hi),) = self.limits
        return (f"(builtins.max({printer._print(self.function)} for {printer._print(var)} in "
                f"range({printer._print(lo)}, {printer._print(hi)} + 1)))")


# -- symbols ----------------------------------------------------------------------------------

i, j, k, h, l, b = sp.symbols("i j k h l b", integer=True, nonnegative=True)
nu = sp.Symbol("nu", integer=True, nonnegative=True)  # summation index over columns
d1, d2, n = sp.symbols("d_1 d_2 n", integer=True, positive=True)
B = sp.Symbol("B", integer=True, positive=True)  # block length of the blockwise formats
phi = sp.Symbol(r"\varphi", positive=True)  # the normalisation floor

M = sp.IndexedBase("M", nonnegative=True)  # the non-negative d1 x d2 matrix (|X| for signed states)
X = sp.IndexedBase("X", real=True)  # a signed state viewed as d1 x d2 (zero-padded to 8 ceil(d2/8))
r = sp.IndexedBase("r", nonnegative=True)  # stored row factor
c = sp.IndexedBase("c", nonnegative=True)  # column sums
cbar = sp.IndexedBase(sp.Symbol(r"\bar{c}", nonnegative=True))  # stored column factor
P = sp.IndexedBase("P", integer=True, nonnegative=True)  # packed sign bytes, d1 x ceil(d2/8)

VALUES = {phi: sp.Float(NORM_FLOOR)}  # the constants, for numerical evaluation


# -- factor shape -----------------------------------------------------------------------------

# d2 = the largest divisor of n that is at most floor(sqrt(n)); d1 = n / d2.
FACTOR_D2 = Maximum(sp.Piecewise((k, sp.Eq(sp.Mod(n, k), 0)), (0, True)), (k, 1, sp.floor(sp.sqrt(n))))


def factor_shape(numel: int) -> tuple[int, int]:
    """``(d1, d2)`` evaluated from FACTOR_D2 (the sympy twin of ``storage_layout.factor_shape``)."""
    dd2 = int(FACTOR_D2.subs(n, numel).doit())
    return numel // dd2, dd2


# -- factors ----------------------------------------------------------------------------------

ROW_SUM = sp.Sum(M[i, j], (j, 0, d2 - 1))  # r_i
COL_SUM = sp.Sum(M[i, j], (i, 0, d1 - 1))  # c_j
COL_FACTOR = c[j] / sp.Max(sp.Sum(c[nu], (nu, 0, d2 - 1)), phi)  # cbar_j: the shorter side, normalised
RECONSTRUCTION = r[i] * cbar[j]  # M_hat_ij = r_i c_j / max(sum M, phi)

# -- signs ------------------------------------------------------------------------------------

# Byte h of row i: bit l is [X_{i, 8h + l} > 0]; X is padded with zeros to 8 ceil(d2/8) columns,
# so the padding bits are 0 (numpy.packbits(X > 0, axis=1, bitorder="little")).
PACKED = sp.Sum(2**l * sp.Piecewise((1, X[i, 8 * h + l] > 0), (0, True)), (l, 0, 7))
UNPACKED = sp.Mod(sp.floor(P[i, sp.floor(j / 8)] / 2 ** sp.Mod(j, 8)), 2)  # the bit of X_ij
SIGNED_RECONSTRUCTION = (2 * UNPACKED - 1) * RECONSTRUCTION  # X_ij <= 0 comes back as -M_hat_ij (maybe -0)

# -- bfloat16 states: the bit operation of spec/stochastic_rounding.md on the float32 value, with
# the state's own 16-bit draw (round to nearest, ties to even, for 'auto' without stochastic
# rounding); no formula of its own here.

# -- float16 states ---------------------------------------------------------------------------

FP16_TINY = sp.Integer(2) ** -24  # the smallest positive float16 (subnormal)
beta2 = sp.Symbol(r"\beta_2", positive=True)
# (1 - beta2) g^2 is below the smallest float16 for |g| < FP16_UNDERFLOW_G, and rounds to 0
# (nearest, ties to even) for |g| <= FP16_FLUSH_G.
FP16_UNDERFLOW_G = sp.sqrt(FP16_TINY / (1 - beta2))
FP16_FLUSH_G = sp.sqrt(FP16_TINY / 2 / (1 - beta2))

# -- storage ----------------------------------------------------------------------------------

ITEMSIZE = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2, "int8": 1, "uint8": 1}
PARAM_SHAPE = None  # a stored tensor with the parameter's shape (n elements)


def stored_tensors(fmt: Format, name: str) -> list[tuple[str, str, tuple[sp.Expr, ...] | None]]:
    """(state-dict key, dtype in ``fast``, shape) of every tensor ``fmt`` stores for a state
    called ``name``; the shape is in terms of n, d1, d2 and B, or PARAM_SHAPE."""
    keys = fmt.keys(name)
    if fmt.kind == "factored":
        out = [(keys[0], "float32", (d1,)), (keys[1], "float32", (d2,))]
        if fmt.signed:
            out.append((keys[2], "uint8", (d1, sp.ceiling(d2 / 8))))
        return out
    if fmt.kind in ("int8", "int4"):
        codes = (n,) if fmt.kind == "int8" else (sp.ceiling(n / 2),)
        return [(keys[0], "uint8", codes), (keys[1], "float32", (sp.ceiling(n / B),))]
    if fmt.kind == "fp16":
        return [(keys[0], "float16", PARAM_SHAPE), (keys[1], "float32", (sp.ceiling(n / B),))]
    return [(keys[0], fmt.dtype, PARAM_SHAPE)]


def stored_bytes(fmt: Format) -> sp.Expr:
    """Bytes ``fmt`` stores for a tensor of n = d1*d2 elements (B: the format's block)."""
    return sp.Add(*(ITEMSIZE[dtype] * (n if shape is PARAM_SHAPE else sp.Mul(*shape))
                    for _, dtype, shape in stored_tensors(fmt, "state")))


# -- instantiation for concrete sizes ---------------------------------------------------------


def _entries(base: sp.IndexedBase, mat: sp.Matrix) -> dict[sp.Expr, sp.Expr]:
    return {base[a, e]: mat[a, e] for a in range(mat.rows) for e in range(mat.cols)}


def factorize(mat: sp.Matrix, floor: sp.Expr = phi) -> tuple[list[sp.Expr], list[sp.Expr]]:
    """``(r, cbar)`` of the non-negative ``mat`` from ROW_SUM, COL_SUM and COL_FACTOR."""
    rows, cols = mat.shape
    entries = _entries(M, mat)
    rr = [ROW_SUM.subs({d2: cols, i: a}).doit().xreplace(entries) for a in range(rows)]
    cc = {c[e]: COL_SUM.subs({d1: rows, j: e}).doit().xreplace(entries) for e in range(cols)}
    cb = [COL_FACTOR.subs({d2: cols, j: e, phi: floor}).doit().xreplace(cc) for e in range(cols)]
    return rr, cb


def reconstruct(rr: list[sp.Expr], cb: list[sp.Expr]) -> sp.Matrix:
    """RECONSTRUCTION for every (i, j)."""
    return sp.Matrix(len(rr), len(cb), lambda a, e: RECONSTRUCTION.subs({i: a, j: e}).xreplace(
        {r[a]: rr[a], cbar[e]: cb[e]}))


def _above_floor(expr: sp.Expr) -> sp.Expr:
    """The branch sum(M) >= phi: every max(sum, phi) is the sum."""
    return expr.replace(lambda e: isinstance(e, sp.Max), lambda e: next(a for a in e.args if a != phi))


def _below_floor(expr: sp.Expr) -> sp.Expr:
    """The branch sum(M) < phi: every max(sum, phi) is phi."""
    return expr.replace(lambda e: isinstance(e, sp.Max), lambda e: phi)


def _rank1(rows: int, cols: int, signs: sp.Matrix | None = None) -> sp.Matrix:
    """``signs * a b^T`` with positive symbols a_i, b_j (signs +1 when not given)."""
    a = sp.symbols(f"a_0:{rows}", positive=True)
    bb = sp.symbols(f"b_0:{cols}", positive=True)
    return sp.Matrix(rows, cols, lambda e, f: (1 if signs is None else signs[e, f]) * a[e] * bb[f])


# -- proofs (each returns residuals that must all be exactly 0, or statements that must be True) --


def _residual(expr: sp.Expr) -> sp.Expr:
    """The expanded numerator of ``expr`` over a common denominator (the denominators here are
    sums and products of positive symbols): 0 exactly when ``expr`` is identically 0."""
    return sp.expand(sp.together(expr).as_numer_denom()[0])


def proof_rank1_exact(rows: int, cols: int) -> list[sp.Expr]:
    """M = a b^T (a, b > 0): M_hat - M on the branch sum(M) >= phi, and M_hat - M sum(M)/phi on
    the branch sum(M) < phi (the floor shrinks the reconstruction). Both residuals cancel to 0."""
    mat = _rank1(rows, cols)
    rec = reconstruct(*factorize(mat))
    total = sum(mat)
    above = [_residual(_above_floor(rec[e]) - mat[e]) for e in range(len(mat))]
    below = [_residual(_below_floor(rec[e]) - mat[e] * total / phi) for e in range(len(mat))]
    return above + below


def proof_marginals_preserved(rows: int, cols: int) -> list[sp.Expr]:
    """Any non-negative M (entries m_ij >= 0, sum(M) >= phi): M_hat has the row sums and column
    sums of M, so the total is kept too. Residuals sum_j M_hat_ij - sum_j M_ij and
    sum_i M_hat_ij - sum_i M_ij."""
    mat = sp.Matrix(rows, cols, lambda a, e: sp.Symbol(f"m_{a}{e}", nonnegative=True))
    rec = reconstruct(*factorize(mat)).applyfunc(_above_floor)
    return ([_residual(sum(rec.row(a)) - sum(mat.row(a))) for a in range(rows)]
            + [_residual(sum(rec.col(e)) - sum(mat.col(e))) for e in range(cols)])


def proof_zero_matrix(rows: int, cols: int) -> tuple[sp.Matrix, sp.Matrix]:
    """The reconstruction of M = 0 with the floor phi > 0 (all zeros) and with phi = 0 (NaN:
    0/0, the reason for the floor)."""
    zero = sp.zeros(rows, cols)
    return reconstruct(*factorize(zero)), reconstruct(*factorize(zero, floor=sp.Integer(0)))


def proof_signed_rank1_exact(signs: sp.Matrix) -> list[sp.Expr]:
    """X = signs * a b^T with signs in {-1, +1}: factor |X|, pack [X > 0] with PACKED, unpack
    with UNPACKED and decode with SIGNED_RECONSTRUCTION; residuals X_hat - X (branch sum >= phi)."""
    rows, cols = signs.shape
    mat = _rank1(rows, cols, signs)
    rr, cb = factorize(mat.applyfunc(sp.Abs))
    width = (cols + 7) // 8
    padded = sp.Matrix.hstack(mat, sp.zeros(rows, 8 * width - cols))
    xe = _entries(X, padded)
    packed = sp.Matrix(rows, width, lambda a, e: PACKED.subs({i: a, h: e}).doit().xreplace(xe))
    out = []
    for a in range(rows):
        for e in range(cols):
            term = SIGNED_RECONSTRUCTION.subs({i: a, j: e}).xreplace(_entries(P, packed))
            term = term.xreplace({r[a]: rr[a], cbar[e]: cb[e]})
            out.append(_residual(_above_floor(term) - mat[a, e]))
    return out


# y = kk + f with integer kk and f in [0, 1), written f = F/(1+F) with F >= 0 (every f in [0, 1)
# is one such value: F = f/(1-f)), so that sympy knows 0 <= f < 1.
_kk = sp.Symbol("k_y", integer=True)
_F = sp.Symbol("F", nonnegative=True)
_f = sp.Symbol("f", nonnegative=True)
_u = sp.Symbol("u", nonnegative=True)


def _floor_0_2(w: sp.Expr) -> sp.Expr:
    """floor(w) for 0 <= w < 2, by the definition of floor (n <= w < n + 1)."""
    return sp.Piecewise((0, w < 1), (1, True))


def proof_stochastic_floor_unbiased() -> sp.Expr:
    """E_u[floor(y + u)] - y for u uniform in [0, 1): sympy splits floor(k + f + u) into
    k + floor(f + u); with f + u in [0, 2) the floor is the indicator of f + u >= 1; the
    integral over u in [0, 1) minus y simplifies to 0."""
    integrand = sp.floor(_kk + _f + _u)
    assert integrand == _kk + sp.floor(_f + _u), integrand  # sympy's own rule for integer k
    integral = sp.integrate(integrand.replace(sp.floor, _floor_0_2), (_u, 0, 1))
    return sp.simplify((integral - (_kk + _f)).subs(_f, _F / (1 + _F)))


def proof_quantisation_error() -> list[bool | None]:
    """|q - y| < 1 before clamping, q = floor(y + u), y = x/s: q - y = floor(f + u) - f is -f
    (f + u < 1) or 1 - f (f + u >= 1, which needs f > 0 as u < 1). Hence |x_hat - x| =
    s |q - y| < s. Returns ``1 - |q - y| > 0`` for both pieces as sympy decides them."""
    pieces = sp.piecewise_fold(_floor_0_2(_f + _u) - _f).args  # ((-f, f + u < 1), (1 - f, True))
    F_pos = sp.Symbol("F", positive=True)
    low = sp.simplify(1 - sp.Abs(pieces[0][0].subs(_f, _F / (1 + _F))))
    high = sp.simplify(1 - sp.Abs(pieces[1][0].subs(_f, F_pos / (1 + F_pos))))
    return [low.is_positive, high.is_positive]
