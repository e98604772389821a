"""Weight decay and the parameter write, shared by every optimizer (spec/weight_decay.md)."""

import sympy as sp

from spec import symbols as s


def decayed(P: sp.Expr, U: sp.Expr, *, cautious_wd: bool, decay_rate: sp.Expr) -> sp.Expr:
    """Decoupled weight decay on the working copy ``P`` before the update ``U`` is subtracted.

    ``decay_rate`` is eta*lambda. Cautious: decay only where U*P >= 0 (zeros agree), no
    renormalisation.
    """
    if cautious_wd:
        mask = sp.Piecewise((1, U * P >= 0), (0, True))
        return P - decay_rate * mask * P
    return P - decay_rate * P


def new_param(U: sp.Expr, *, cautious_wd: bool, P: sp.Expr = s.p) -> sp.Expr:
    """``p_t`` before rounding: decay, then subtract the update (which holds the lr)."""
    return decayed(P, U, cautious_wd=cautious_wd, decay_rate=s.lr * s.wd) - U
