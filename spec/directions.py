"""The direction features as sympy expressions: the single source of truth (spec/directions.md).

Each feature is a function returning its quantities in the order they are computed, as
:class:`Stage` records: a name, the free indices of the quantity and its expression, written
in terms of the inputs and of the symbols of the earlier stages (the form the docs print; the
conformance suite evaluates the stages in order, each from the values of the earlier ones).
Tensor-wide reductions are written out as sums (and maxima) over the elements, so a rule is
self-contained. Flat tensors of N elements have elements ``x[k]``; the matrix features view a
tensor with >= 2 dims as R x C = (shape[0], N / shape[0]), elements ``X[i, j]``. Where the
features act in each optimizer, and in which order, spec/directions.md says in words; atan2's
rule is part of AdamW's, Adopt's and Prodigy's (spec/adamw.py and friends).
"""

from __future__ import annotations

from typing import NamedTuple

import sympy as sp

from spec import symbols as s
from spec.hparams.directions import (
    BETA2_MIN,
    EMA_ALPHA,
    K_WARMUP_STEPS,
    KOURKOUTAS,
    KOURKOUTAS_RUNTIME,
    MASKS,
    ORTHOGRAD_FEATURE,
    SIGN_FEATURES,
    TINY_SPIKE,
    kourkoutas_constraints,
    mask_constraints,
    sign_constraints,
)
from spec.state_storage import Maximum
from spec.write import decayed

# Every direction feature's hyperparameters and contradictions, for the page's table (each
# optimizer's own page lists the ones it takes).
HYPERPARAMETERS = ORTHOGRAD_FEATURE | MASKS | KOURKOUTAS | KOURKOUTAS_RUNTIME | SIGN_FEATURES
CONSTRAINTS = (*mask_constraints("betas"), *kourkoutas_constraints(), *sign_constraints(kappa=True, normed=True))

__all__ = [
    "CAUTIOUS_FLOOR",
    "CONSTRAINTS",
    "HYPERPARAMETERS",
    "NOISE_SCALE",
    "ORTHO_FLOOR",
    "ORTHO_RELAX",
    "ORTHO_ROUNDS",
    "PROJECTED_FLOOR",
    "SIGN_FLOOR",
    "U_LEVELS",
    "ElementwiseMaximum",
    "Stage",
    "cautious",
    "freeze_on_flip",
    "grams",
    "iterative_first_axis",
    "kourkoutas",
    "orthograd_flattened",
    "orthograd_iterative",
    "projected",
    "rules",
    "stochastic_sign",
    "stochastic_sign_mean",
]

ORTHO_FLOOR = sp.Float("1e-30")  # added to ||w||^2, ||g_perp|| and the slice sums of w^2
ORTHO_PARALLEL = sp.Float("1e-12")  # ||g_perp||^2 <= 1e-12 ||g||^2: g is parallel to w and g' = 0
ORTHO_RELAX = sp.Rational(101, 100)  # the iterative projection's over-relaxation (adv_optm 2.5.16)
ORTHO_ROUNDS = 3  # rounds of the iterative projection, each along both axes
CAUTIOUS_FLOOR = sp.Rational(1, 1000)  # the kept fraction is floored at 1e-3
SIGN_FLOOR = sp.Float("1e-12")  # the stochastic sign's row and column maxima are floored at this
NOISE_SCALE = sp.Rational(1, 2**15)  # xi = (u + 1/2) 2^-15 - 1 for a 16-bit integer u
PROJECTED_FLOOR = sp.Float("1e-30")  # the rank-1 estimate divides by max(mean|x|, 1e-30)
U_LEVELS = 2**16  # the values of a 16-bit draw

# -- symbols ----------------------------------------------------------------------------------

k, i, j = sp.symbols("k i j", integer=True, nonnegative=True)  # free indices: flat, row, column
a, b = sp.symbols("a b", integer=True, nonnegative=True)  # summation indices
R, C = sp.symbols("R C", integer=True, positive=True)  # the matrix view's rows and columns (R*C = N)
B = sp.Symbol("B", integer=True, positive=True)  # tensors with a gradient in a Kourkoutas bucket

w = sp.IndexedBase("w", real=True)  # the parameter before the step (flat w[k] or matrix w[i, j])
g = sp.IndexedBase("g", real=True)  # the gradient (OrthoGrad's input, or g' for Cautious / Grams)
n = sp.IndexedBase("n", real=True)  # the numerator (Adam family) or the direction (Lion) to mask
x = sp.IndexedBase("x", real=True)  # a raw direction (the stochastic sign's and projected's input)
X = sp.IndexedBase("X", real=True)  # the iterate of the iterative projection before a substep
u = sp.IndexedBase("u", integer=True, nonnegative=True)  # 16-bit random integers, one per element
sq = sp.IndexedBase(r"\lVert g\rVert^{2}", nonnegative=True)  # squared norms of a bucket's gradients

x_el = sp.Symbol("x", real=True)  # one element of a raw direction (freeze-on-flip)
dir_el = sp.Symbol(r"\mathrm{dir}", real=True)  # one element of the signed direction
prev_bit = sp.Symbol(r"\mathrm{prev}", integer=True, nonnegative=True)  # the stored bit [x_{t-1} > 0]
z_el = sp.Symbol("z", real=True)  # a normalised element, |z| <= 1 (the stochastic sign's mean)
u_el = sp.Symbol("u", integer=True, nonnegative=True)  # one 16-bit draw

alpha_r = sp.Symbol(EMA_ALPHA.symbol, nonnegative=True)
eps_s = sp.Symbol(TINY_SPIKE.symbol, positive=True)
beta2_min = sp.Symbol(BETA2_MIN.symbol, nonnegative=True)
T_K = sp.Symbol(K_WARMUP_STEPS.symbol, nonnegative=True, integer=True)
r_prev = sp.Symbol("r_{t-1}", nonnegative=True)  # the bucket's EMA of its norm before the step
prod_prev = sp.Symbol(r"\Pi_{t-1}", positive=True)  # the product of the dynamic beta2s before the step (1 at t = 1)


class Stage(NamedTuple):
    """One quantity of a feature: its LaTeX ``name``, its free ``index`` (() for a scalar, or for
    an elementwise quantity that no reduction reads) and its ``expr``."""

    name: str
    index: tuple[sp.Symbol, ...]
    expr: sp.Expr

    @property
    def symbol(self) -> sp.Symbol | sp.IndexedBase:
        """What later stages write for this quantity (indexed when it has free indices)."""
        return sp.IndexedBase(self.name, real=True) if self.index else sp.Symbol(self.name, real=True)

    @property
    def lhs(self) -> str:
        """The left-hand side the docs print."""
        return sp.latex(self.symbol[self.index]) if self.index else self.name


class _Stages(dict):
    """Collects stages; calling it records one and returns its symbol."""

    def __call__(self, key: str, name: str, expr: sp.Expr, *index: sp.Symbol) -> sp.Symbol | sp.IndexedBase:
        self[key] = Stage(name, index, expr)
        return self[key].symbol


class ElementwiseMaximum(Maximum):
    """``Maximum`` that lambdifies to an elementwise ``numpy.maximum`` over the range, so that
    it may be evaluated for a whole row or column of indices at once."""

    def _numpycode(self, printer) -> str:
        ((var, lo, hi),) = self.limits
        reduce_, maximum = printer._module_format("functools.reduce"), printer._module_format("numpy.maximum")
        return (f"{reduce_}({maximum}, [{printer._print(self.function)} for {printer._print(var)} in "
                f"range({printer._print(lo)}, {printer._print(hi)} + 1)])")


_max = ElementwiseMaximum


def _sum_flat(f) -> sp.Expr:
    return sp.Sum(f(a), (a, 0, s.N - 1))


# -- OrthoGrad --------------------------------------------------------------------------------


def orthograd_flattened() -> dict[str, Stage]:
    """OrthoGrad over the whole tensor as one vector of N elements: remove g's component along w,
    then restore g's norm. Indices: k."""
    st = _Stages()
    wg = st("wg", r"\langle w, g\rangle", _sum_flat(lambda e: w[e] * g[e]))
    ww = st("ww", r"\lVert w\rVert^{2}", _sum_flat(lambda e: w[e] ** 2))
    g_norm = st("g_norm", r"\lVert g\rVert", sp.sqrt(_sum_flat(lambda e: g[e] ** 2)))
    g_perp = st("g_perp", r"g_{\perp}", g[k] - wg / (ww + ORTHO_FLOOR) * w[k], k)
    perp_norm = st("perp_norm", r"\lVert g_{\perp}\rVert", sp.sqrt(_sum_flat(lambda e: g_perp[e] ** 2)))
    # A gradient parallel to w has g_perp = rounding residue, whose direction is noise: g' = 0.
    st("g_prime", "g'", sp.Piecewise((0, perp_norm**2 <= ORTHO_PARALLEL * g_norm**2),
                                     (g_perp[k] * g_norm / (perp_norm + ORTHO_FLOOR), True)), k)
    return dict(st)


def iterative_first_axis() -> sp.Expr:
    """The axis the iterative projection reduces over first: 0 (down the columns) if R > C."""
    return sp.Piecewise((0, R > C), (1, True))


def _along(axis: int, f) -> sp.Expr:
    """The sum of ``f(row, column)`` along ``axis`` (0: over the rows, one value per column j)."""
    return sp.Sum(f(a, j), (a, 0, R - 1)) if axis == 0 else sp.Sum(f(i, b), (b, 0, C - 1))


def orthograd_iterative(axis: int) -> dict[str, Stage]:
    """One substep of the iterative projection (matrices, indices i, j) along ``axis``: from
    the iterate X, subtract 1.01 times each slice's projection onto w and rescale each slice to
    the original gradient's norm tau (both norms floored at nu = 1/sqrt(slice length)). The
    projection runs ORTHO_ROUNDS rounds of the substep along iterative_first_axis() and then
    the other axis, starting from X = g; nu, tau and pi are the same in every round."""
    slice_index = (j,) if axis == 0 else (i,)
    st = _Stages()
    nu = st(f"nu{axis}", rf"\nu_{axis}", 1 / sp.sqrt(R if axis == 0 else C))
    tau = st(f"tau{axis}", rf"\tau_{axis}", sp.Max(sp.sqrt(_along(axis, lambda r, c: g[r, c] ** 2)), nu), *slice_index)
    pi = st(f"pi{axis}", rf"\pi_{axis}", _along(axis, lambda r, c: w[r, c] ** 2) + ORTHO_FLOOR, *slice_index)
    proj = st(f"x_proj{axis}", rf"\tilde X^{{({axis})}}",
              X[i, j] - ORTHO_RELAX * _along(axis, lambda r, c: w[r, c] * X[r, c]) / pi[slice_index] * w[i, j], i, j)
    norm = sp.Max(sp.sqrt(_along(axis, lambda r, c: proj[r, c] ** 2)), nu)
    st(f"x{axis}", rf"X^{{({axis})}}", proj[i, j] * tau[slice_index] / norm, i, j)
    return dict(st)


# -- Cautious and Grams -----------------------------------------------------------------------


def cautious() -> dict[str, Stage]:
    """Keep the coordinates where the numerator (or Lion's direction) n agrees in sign with g,
    rescaled by the kept fraction (floored at 1e-3). Indices: k."""
    st = _Stages()
    phi = st("phi", r"\varphi", sp.Piecewise((1, n[k] * g[k] > 0), (0, True)), k)
    phi_mean = st("phi_mean", r"\bar\varphi", _sum_flat(lambda e: phi[e]) / s.N)
    st("n", "n'", n[k] * phi[k] / sp.Max(phi_mean, CAUTIOUS_FLOOR), k)
    return dict(st)


def grams() -> dict[str, Stage]:
    """The gradient's sign with the numerator's magnitude. Index: k."""
    return {"n": Stage("n'", (k,), sp.sign(g[k]) * sp.Abs(n[k]))}


# -- Kourkoutas-beta --------------------------------------------------------------------------


def kourkoutas() -> dict[str, Stage]:
    """The dynamic beta2 of one parameter at its step t, from the B gradients its bucket has this
    step (their squared norms), the bucket's EMA r before the step and the parameter's product
    of earlier beta2s. T_K = 0 is no warm-up (w = 1)."""
    st = _Stages()
    rho = st("rho", r"\rho", sp.sqrt(sp.Sum(sq[b], (b, 0, B - 1))))
    r_new = st("r", "r_t", alpha_r * r_prev + (1 - alpha_r) * rho)
    ratio = st("x", r"x_{\rho}", rho / (r_new + eps_s))
    sun = st("sun", r"\mathrm{sun}", ratio / (1 + ratio))
    target = st("beta2_hat", r"\hat\beta_2", s.beta2 - (s.beta2 - beta2_min) * sun)
    weight = st("w", r"w_K", sp.Piecewise((1, sp.Eq(T_K, 0)), (sp.Min(1, s.t / T_K), True)))
    beta2_t = st("beta2_t", r"\beta_{2,t}", (1 - weight) * s.beta2 + weight * target)
    prod = st("prod", r"\Pi_t", prod_prev * beta2_t)
    st("bc2", r"\mathrm{bc}_2", 1 - prod)
    return dict(st)


# -- the sign features ------------------------------------------------------------------------


def stochastic_sign(matrix: bool = True) -> dict[str, Stage]:
    """The stochastic sign of a raw direction: sign(x) for 0-d and 1-D tensors; for matrices
    (indices i, j), rows then columns scaled to max |x| = 1 (floored at 1e-12) and the sign
    of x + xi, xi = (u + 1/2) 2^-15 - 1 from the 16-bit draws u."""
    if not matrix:
        return {"dir": Stage(r"\mathrm{dir}", (k,), sp.sign(x[k]))}
    st = _Stages()
    row_max = st("row_max", r"\mu^{\mathrm{row}}", sp.Max(_max(sp.Abs(x[i, b]), (b, 0, C - 1)), SIGN_FLOOR), i)
    y = st("y", "y", x[i, j] / row_max[i], i, j)
    col_max = st("col_max", r"\mu^{\mathrm{col}}", sp.Max(_max(sp.Abs(y[a, j]), (a, 0, R - 1)), SIGN_FLOOR), j)
    z = st("z", "z", y[i, j] / col_max[j], i, j)
    xi = st("xi", r"\xi", (u[i, j] + sp.Rational(1, 2)) * NOISE_SCALE - 1, i, j)
    st("dir", r"\mathrm{dir}", sp.sign(z[i, j] + xi[i, j]), i, j)
    return dict(st)


def stochastic_sign_mean() -> sp.Expr:
    """The mean of sign(z + xi) over all 2^16 draws u: z rounded to the 2^-15 grid of the
    midpoints, so exactly z for z on that grid (and 0 at z = 0)."""
    xi = (u_el + sp.Rational(1, 2)) * NOISE_SCALE - 1
    return sp.Sum(sp.sign(z_el + xi), (u_el, 0, U_LEVELS - 1)) / U_LEVELS


def freeze_on_flip() -> dict[str, Stage]:
    """Elementwise: the raw direction's bit [x > 0] (stored as prev_sign) and the direction,
    zeroed from the second step on where the bit differs from the stored one."""
    st = _Stages()
    bit = st("bit", r"\mathrm{bit}", sp.Piecewise((1, x_el > 0), (0, True)))
    st("dir", r"\mathrm{dir}'", sp.Piecewise((dir_el, sp.Eq(s.t, 1)), (0, sp.Ne(bit, prev_bit)), (dir_el, True)))
    return dict(st)


def projected(matrix: bool = True, cautious_wd: bool = False) -> dict[str, Stage]:
    """Projected adaptivity's l from the raw direction x (the mean |x| of a 0-d or 1-D tensor of
    N elements x[k]; the rank-1 estimate row mean x column mean / mean of |x| of a matrix,
    indices i, j), the elementwise update lr*dir*l and the parameter with the weight decay
    scaled by l."""
    st = _Stages()
    if matrix:
        row = st("row_mean", r"\bar r", sp.Sum(sp.Abs(x[i, b]), (b, 0, C - 1)) / C, i)
        col = st("col_mean", r"\bar k", sp.Sum(sp.Abs(x[a, j]), (a, 0, R - 1)) / R, j)
        mean = st("mean", r"\overline{|x|}", sp.Sum(sp.Sum(sp.Abs(x[a, b]), (b, 0, C - 1)), (a, 0, R - 1)) / (R * C))
        at: tuple[sp.Symbol, ...] = (i, j)
        ell = st("ell", r"\ell", row[i] * col[j] / sp.Max(mean, PROJECTED_FLOOR), *at)[at]
    else:
        at = ()
        ell = st("ell", r"\ell", _sum_flat(lambda e: sp.Abs(x[e])) / s.N)
    update = st("U", "U_t", s.lr * dir_el * ell, *at)
    update = update[at] if at else update
    st("p", "p_t", decayed(s.p, update, cautious_wd=cautious_wd, decay_rate=s.lr * s.wd * ell) - update, *at)
    return dict(st)


def rules() -> dict[str, dict[str, Stage]]:
    """Every feature's stages, by the name the docs give it."""
    return {
        "OrthoGrad (flattened)": orthograd_flattened(),
        "OrthoGrad (iterative), along axis 0": orthograd_iterative(0),
        "OrthoGrad (iterative), along axis 1": orthograd_iterative(1),
        "Cautious": cautious(),
        "Grams": grams(),
        "Kourkoutas-beta": kourkoutas(),
        "Stochastic sign (matrices)": stochastic_sign(True),
        "Freeze-on-flip": freeze_on_flip(),
        "Projected adaptivity (vectors)": projected(False),
        "Projected adaptivity (matrices)": projected(True),
    }
