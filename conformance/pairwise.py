"""All-pairs (pairwise covering) designs over every flag of an optimizer, generated from spec.

The flags of an optimizer are its hyperparameters of Kind BOOL, CHOICE and OPTIONAL_CHOICE
(``features.flag_names``) plus a two-value domain for the numeric switches in ``SWITCHES`` that
change code paths (betas[0] = 0 removes the first moment, kappa_p != 1 is Lion-K, ...). A
configuration is valid when it meets every spec constraint of the optimizer (and the shell's
``layer_key_fn`` rule). :func:`design` covers every pair of values that occurs in at least one
valid configuration with valid rows, greedily and deterministically, and lists the pairs that
occur in none (each must raise). Feasibility is decided by a small backtracking search whose
partial checks evaluate the constraints on the decided flags only (``features.Values`` raises
for an undecided one), so it never enumerates the whole product.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from typing import Any

from conformance.features import Values, broken, defaults_of, flag_names, shape_key
from spec.hparams.core import Constraint, Kind


def _betas(default):
    return (default, (0.0, default[1]))


# name -> values from its default (the default first): numeric switches that change code paths.
SWITCHES = {
    "betas": _betas,  # betas[0] = 0: no first moment (Cautious, Grams, Nesterov need one)
    "momentum": lambda d: (d, 0.0),  # SignSGD without momentum: the sign of the gradient
    "kappa_p": lambda d: (d, 1.5),  # Lion-K's power direction instead of the sign
    "nesterov_coef": lambda d: (d, 0.5),  # None: the first-moment beta
    "eps": lambda d: (d, None),  # None: the scale-invariant 1/sqrt(numel)
    "clip_lambda": lambda d: (d, None),  # Adopt without its clip
    "beta1_warmup": lambda d: (d, 3),  # SimplifiedAdEMAMix's beta1 schedule
    "prodigy_steps": lambda d: (d, 2),  # d frozen (and the statistics freed) after 2 steps
    "layer_key_fn": lambda d: (d, shape_key),  # Kourkoutas-beta buckets of several tensors
    "beta1": lambda d: (d, 0.9),  # Adafactor with a first moment
    "lr": lambda d: (d, 1e-2),  # Adafactor: a given lr instead of the relative step (lr=None)
}
# A switch applies where the hyperparameter has the kind it was written for (CAME's betas are a
# triple, Adafactor's eps a pair that cannot be None, most lrs a plain float).
SWITCH_KINDS = {"betas": Kind.BETAS, "eps": Kind.OPTIONAL_FLOAT, "lr": Kind.OPTIONAL_FLOAT,
                "beta1": Kind.OPTIONAL_FLOAT}

LAYER_KEY_RULE = Constraint(
    ("layer_key_fn", "kourkoutas_beta"), "the optimizer shell's rule: layer_key_fn needs Kourkoutas-beta",
    lambda h: h["layer_key_fn"] is None or h["kourkoutas_beta"],
)


@dataclass
class FlagSpace:
    """The flags of one optimizer, their domains and the constraints between them."""

    names: tuple[str, ...]
    domains: tuple[tuple[Any, ...], ...]
    defaults: dict[str, Any]
    constraints: tuple[Constraint, ...]
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, entry) -> FlagSpace:
        table = entry.hyperparameters
        names, domains = [], []
        for name in flag_names(table):
            h = table[name]
            if h.kind is Kind.BOOL:
                domains.append((h.default, not h.default))
            else:
                options = (None, *h.choices) if h.kind is Kind.OPTIONAL_CHOICE else h.choices
                domains.append((h.default, *(c for c in options if c != h.default)))
            names.append(name)
        for name, values in SWITCHES.items():
            if name in table and table[name].kind is SWITCH_KINDS.get(name, table[name].kind):
                names.append(name)
                domains.append(values(table[name].default))
        rules = (LAYER_KEY_RULE,) if {"layer_key_fn", "kourkoutas_beta"} <= set(table) else ()
        return cls(tuple(names), tuple(domains), defaults_of(table), (*entry.constraints, *rules))

    def completion(self, partial: Mapping[str, Any]) -> dict[str, Any] | None:
        """A valid full assignment extending ``partial`` (defaults tried first), or None."""
        key = frozenset(partial.items())
        if key not in self._cache:
            self._cache[key] = self._search(dict(partial))
        found = self._cache[key]
        return None if found is None else dict(found)

    def _search(self, partial: dict[str, Any]) -> dict[str, Any] | None:
        """Backtracking over the flags the constraints are waiting for: a constraint evaluated
        without reading an undecided flag holds (or fails) whatever those flags are, so when no
        constraint fails and none is waiting, the defaults complete ``partial``."""
        blocked: set[str] = set()
        undecided = [n for n in self.names if n not in partial]
        if broken(self.constraints, Values(self.defaults, partial, undecided), blocked):
            return None
        if not blocked:
            return {n: partial.get(n, self.defaults[n]) for n in self.names}
        name = next(n for n in self.names if n in blocked)
        for value in self.values_of(name):
            found = self._search({**partial, name: value})
            if found is not None:
                return found
        return None

    def feasible(self, partial: Mapping[str, Any]) -> bool:
        return self.completion(partial) is not None

    def values_of(self, name: str) -> tuple[Any, ...]:
        return self.domains[self.names.index(name)]


Pair = tuple[tuple[int, int], tuple[int, int]]  # ((flag index, value index), (flag index, value index))


@dataclass
class Design:
    """A pairwise design: ``rows`` (valid full assignments) cover every feasible pair; ``invalid``
    holds one configuration per value that no valid configuration has, and one per infeasible
    pair of otherwise feasible values."""

    space: FlagSpace
    rows: list[dict[str, Any]]
    invalid: list[dict[str, Any]]

    @cached_property
    def feasible_pairs(self) -> set[Pair]:
        return {p for p in all_pairs(self.space) if self.space.feasible(_assignment(self.space, p))}

    def covered(self) -> set[Pair]:
        out: set[Pair] = set()
        for row in self.rows:
            out |= pairs_of(self.space, row)
        return out


def all_pairs(space: FlagSpace) -> list[Pair]:
    out = []
    for i, j in combinations(range(len(space.names)), 2):
        for a in range(len(space.domains[i])):
            for b in range(len(space.domains[j])):
                out.append(((i, a), (j, b)))
    return out


def _assignment(space: FlagSpace, cells) -> dict[str, Any]:
    return {space.names[i]: space.domains[i][a] for i, a in cells}


def _index(space: FlagSpace, i: int, value: Any) -> int:
    return next(a for a, v in enumerate(space.domains[i]) if v == value and type(v) is type(value))


def pairs_of(space: FlagSpace, row: Mapping[str, Any]) -> set[Pair]:
    cells = [(i, _index(space, i, row[n])) for i, n in enumerate(space.names)]
    return set(combinations(cells, 2))


def design(space: FlagSpace) -> Design:
    """Greedy all-pairs: seed each row with the first uncovered feasible pair, then give each
    remaining flag (in table order) the value that covers the most uncovered pairs with the
    flags already set and keeps the row completable (ties: the earlier value, defaults first)."""
    n = len(space.names)
    alone = {(i, a) for i in range(n) for a in range(len(space.domains[i]))
             if space.feasible(_assignment(space, [(i, a)]))}
    invalid = [_assignment(space, [cell]) for cell in sorted(set(
        (i, a) for i in range(n) for a in range(len(space.domains[i]))) - alone)]
    uncovered: set[Pair] = set()
    for p in all_pairs(space):
        if p[0] in alone and p[1] in alone:
            if space.feasible(_assignment(space, p)):
                uncovered.add(p)
            else:
                invalid.append(_assignment(space, p))
    rows = []
    while uncovered:
        seed = min(uncovered)
        row = dict(seed)
        for i in range(n):
            if i in row:
                continue
            best, best_gain = None, -1
            for a in range(len(space.domains[i])):
                if not space.feasible(_assignment(space, [*row.items(), (i, a)])):
                    continue
                gain = sum(1 for k, b in row.items() if tuple(sorted(((k, b), (i, a)))) in uncovered)
                if gain > best_gain:
                    best, best_gain = a, gain
            row[i] = best
        assignment = _assignment(space, row.items())
        rows.append(assignment)
        uncovered -= pairs_of(space, assignment)
    return Design(space, rows, invalid)


def non_default(space: FlagSpace, config: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``config`` that differ from the defaults (what a constructor is given)."""
    return {k: v for k, v in config.items() if not (v == space.defaults[k] and type(v) is type(space.defaults[k]))}


def label(config: Mapping[str, Any]) -> str:
    def show(v: Any) -> str:
        return getattr(v, "__name__", None) or (f"({v[0]:g},{v[1]:g})" if isinstance(v, tuple) else str(v))
    return ",".join(f"{k}={show(v)}" for k, v in config.items()) or "defaults"
