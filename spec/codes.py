"""The blockwise minifloat codes of 8-bit and 4-bit states as sympy expressions (spec/state_storage.md).

A code has ``e`` exponent bits and ``m`` mantissa bits (plus a sign bit when signed) and one
scale per block of B elements. The block's largest magnitude A_b is scaled to the top level
T = 2 - 2^-m; each element's normalised magnitude y is stored as the level just below or
above it, chosen with a 16-bit draw r so that the decoded value is unbiased. The constants of
each format (``CODES``) are in ``spec.storage_layout``; ``reference.codes`` implements these
expressions and ``fast.codes`` the same codes with integer operations on float32 patterns.
"""

from __future__ import annotations

import itertools

import sympy as sp

from spec.storage_layout import CODES, SR_BITS, Code

__all__ = [
    "ALPHA", "BIAS", "LEVEL", "NORMALISED", "NORMAL_CODE", "SCALE", "SIGNED_CODE", "SIGNED_LEVEL",
    "SUBNORMAL_LEVEL", "TOP", "UNSIGNED_CODE", "fl32", "instantiate", "level_ratios", "smallest_fraction",
]

e, m = sp.symbols("e m", integer=True, positive=True)  # m may be 0 for 4-bit v: substituted before use
y = sp.Symbol("y", nonnegative=True)  # normalised magnitude |x_k| T / A_b
x = sp.Symbol("x_k", real=True)
A = sp.Symbol("A_b", nonnegative=True)  # the block's largest |x|
c = sp.Symbol("c", integer=True, nonnegative=True)  # magnitude code
R = sp.Symbol("r_k", integer=True, nonnegative=True)  # the 16-bit draw (2^15: round to nearest)


class fl32(sp.Function):  # lower case: it reads as the math (rounding to float32)
    """Rounding to the nearest float32 (the kernels' precision); lambdify with
    ``{"fl32": lambda v: numpy.float64(numpy.float32(v))}``."""

    def _latex(self, printer) -> str:
        return rf"\mathrm{{fl}}_{{32}}\left({printer._print(self.args[0])}\right)"


BIAS = 2**e - 1
TOP = 2 - 2**-m  # the largest level
SCALE = A / TOP  # s_b, stored per block
NORMALISED = sp.Abs(x) * TOP / A  # y_k; computed as fl32(|x| fl32(fl32(1 / A_b) T))
ALPHA = sp.floor(sp.log(y, 2))  # y's binade: 2^alpha <= y < 2^(alpha + 1)
# The code of y in binade alpha: 2^m levels per binade, y's position among them plus the draw.
NORMAL_CODE = 2**m * (ALPHA + BIAS) + sp.floor(2**m * (y / 2**ALPHA - 1) + R / 2**SR_BITS)


def _clamp(expr: sp.Expr) -> sp.Expr:
    return sp.Min(sp.Max(expr, 0), 2 ** (e + m) - 1)


# Non-negative states (second moments): zero-free; below 2^-bias the smallest level.
UNSIGNED_CODE = sp.Piecewise((_clamp(NORMAL_CODE), y >= 2**-BIAS), (0, True))
# Signed states (first moments): below L1 = 2^(1 - bias) subnormal steps of L1 / 2^m, rounded as
# the binade [L1, 2 L1) after adding L1 in float32.
_L1 = 2 ** (1 - BIAS)
SIGNED_CODE = sp.Piecewise(
    (_clamp(NORMAL_CODE), y >= _L1),
    (_clamp(NORMAL_CODE.xreplace({y: fl32(y + _L1)}).subs(ALPHA.xreplace({y: fl32(y + _L1)}), 1 - BIAS) - 2**m),
     True),
)
LEVEL = 2 ** (sp.floor(c / 2**m) - BIAS) * (1 + sp.Mod(c, 2**m) / 2**m)  # normal level of code c
SUBNORMAL_LEVEL = sp.Mod(c, 2**m) * 2 ** (1 - BIAS - m)
SIGNED_LEVEL = sp.Piecewise((SUBNORMAL_LEVEL, c < 2**m), (LEVEL, True))
# Decoded value: sign * level * s_b, the sign bit 2^(e+m) set only on negative nonzero codes.


def instantiate(expr: sp.Expr, code: Code) -> sp.Expr:
    """``expr`` with e and m of ``code``."""
    return expr.subs({e: code.exp_bits, m: code.man_bits})


def levels(code: Code) -> list[sp.Rational]:
    """Every magnitude level of ``code``, exactly, in code order."""
    expr = instantiate(SIGNED_LEVEL if code.signed else LEVEL, code)
    return [sp.nsimplify(expr.subs(c, k)) for k in range(code.magnitudes)]


def level_ratios(code: Code) -> list[sp.Rational]:
    """L(c + 1) / L(c) over consecutive normal levels (exact; a signed code's subnormals are
    evenly spaced instead): the largest is the factor by which a value rounded down to a level
    can be below its true value."""
    lv = levels(code)[2**code.man_bits if code.signed else 0:]
    return [b / a for a, b in itertools.pairwise(lv)]


def smallest_fraction(code: Code) -> sp.Rational:
    """Over the range of the normal levels: decoded / true >= this (rounding down to the next
    level in the worst case), 1 / max(level ratio); exact, proven over all codes."""
    return 1 / max(level_ratios(code))


def range_of(code: Code) -> sp.Rational:
    """The smallest normal level over the top level: values down to this fraction of the block
    maximum keep the relative bound of ``smallest_fraction``."""
    lv = levels(code)
    return lv[2**code.man_bits if code.signed else 0] / lv[-1]


ALL = CODES
