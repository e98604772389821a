"""The direction features' samples and the validity rules the generated designs share.

Everything here is derived from ``spec``: which optimizer takes which feature
(``FEATURES_OF``), the constraints every configuration must meet and the hyperparameter
tables. ``feature_samples`` gives each registry entry one sample per feature (OrthoGrad in both
modes, Kourkoutas-beta with beta2_min moved and with every one of its knobs moved), each on top of
as many of the entry's other sample values as the constraints allow, so a feature runs with the
rest of the optimizer off its defaults.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.tolerances import TOLERANCES
from spec.hparams.core import Constraint, Kind
from spec.hparams.directions import FEATURES_OF, ORTHOGRAD_MODES

# Kept at their defaults in the generated samples: stochastic rounding on, so bf16 parameters
# exercise the "param" draws next to the stochastic sign's.
NOT_MERGED = ("stochastic_rounding",)


def shape_key(p: Any) -> tuple[int, ...]:
    """A ``layer_key_fn``: tensors of one shape share a Kourkoutas-beta bucket. In the suite's
    inputs the two (6, 5) matrices of group 0 (one contiguous, one transposed) form one bucket;
    it reads only ``shape``, which torch tensors and NumPy arrays both have."""
    return tuple(p.shape)


KOURKOUTAS_TUNED = {"kourkoutas_beta": True, "beta2_min": 0.5, "ema_alpha": 0.8, "tiny_spike": 1e-6,
                    "k_warmup_steps": 3, "layer_key_fn": shape_key}


def feature_settings(feature: str) -> dict[str, dict[str, Any]]:
    """Sample name -> the hyperparameters that turn ``feature`` on (a FEATURES_OF name)."""
    if feature == "orthograd":
        return {f"orthograd_{mode}": {"orthograd": mode} for mode in ORTHOGRAD_MODES}
    if feature == "kourkoutas_beta":
        # beta2_min below every betas[1] of the registry (group 1 uses 0.9): its default 0.9 is not.
        return {"kourkoutas": {"kourkoutas_beta": True, "beta2_min": 0.85}, "kourkoutas_tuned": KOURKOUTAS_TUNED}
    return {feature: {feature: True}}


class Unknown(Exception):
    """A constraint read a hyperparameter that a partial assignment has not fixed yet."""


class Values(Mapping):
    """Hyperparameter values for ``Constraint.holds``: ``given`` over ``defaults``; the names in
    ``open_names`` are undecided and raise :class:`Unknown` when read."""

    def __init__(self, defaults: Mapping[str, Any], given: Mapping[str, Any], open_names=()) -> None:
        self.defaults, self.given, self.open = defaults, given, set(open_names)

    def __getitem__(self, key: str) -> Any:
        if key in self.given:
            return self.given[key]
        if key in self.open:
            raise Unknown(key)
        return self.defaults[key]

    def __iter__(self):
        return iter(self.defaults)

    def __len__(self) -> int:
        return len(self.defaults)


def defaults_of(table: Mapping[str, Any]) -> dict[str, Any]:
    return {name: h.default for name, h in table.items()}


def broken(constraints: Sequence[Constraint], values: Mapping[str, Any], blocked: set[str] | None = None,
           ) -> list[Constraint]:
    """The constraints ``values`` violates; one whose outcome depends on an undecided name is
    not counted (so a partial assignment is rejected only when no completion can repair it), and
    the undecided name it read first is added to ``blocked``."""
    out = []
    for c in constraints:
        try:
            if not c.holds(values):
                out.append(c)
        except Unknown as unknown:
            if blocked is not None:
                blocked.add(unknown.args[0])
    return out


def kourkoutas_runtime_ok(hyper: Mapping[str, Any], table: Mapping[str, Any]) -> bool:
    """The optimizer-level rule of the optimizer shell: ``layer_key_fn`` needs Kourkoutas-beta on."""
    return hyper.get("layer_key_fn") is None or bool(hyper.get("kourkoutas_beta", False)) \
        or "kourkoutas_beta" not in table


def valid(entry, hyper: Mapping[str, Any], group1: Mapping[str, Any] | None = None) -> bool:
    """Whether ``hyper`` (group 0) and ``hyper`` + ``group1`` (group 1) meet every constraint."""
    defaults = defaults_of(entry.hyperparameters)
    group1 = entry.group1 if group1 is None else group1
    for values in (hyper, {**hyper, **group1}):
        if broken(entry.constraints, Values(defaults, values)):
            return False
    return kourkoutas_runtime_ok(hyper, entry.hyperparameters)


def compatible_group1(entry, hyper: Mapping[str, Any]) -> dict[str, Any]:
    """``entry.group1`` less the overrides that would contradict ``hyper`` in group 1."""
    out: dict[str, Any] = {}
    for key, value in entry.group1.items():
        if valid(entry, hyper, {**out, key: value}):
            out[key] = value
    return out


def merged(entry, start: Mapping[str, Any], samples: Mapping[str, Mapping[str, Any]],
           order: Sequence[str]) -> dict[str, Any]:
    """``start`` plus every value of the samples (in ``order``; the first value of a name wins)
    that keeps the configuration valid with ``entry.group1``."""
    hyper = dict(start)
    for name in order:
        for key, value in samples[name].items():
            if key in hyper or key in NOT_MERGED:
                continue
            if valid(entry, {**hyper, key: value}):
                hyper[key] = value
    return hyper


def feature_samples(entry) -> dict[str, dict[str, Any]]:
    """``feature_<name>`` -> a valid sample with that feature on, for every FEATURES_OF feature of
    ``entry``, the rest of the hyperparameters merged from the entry's own samples (its richest
    first)."""
    order = [entry.rich_sample(), *(s for s in entry.samples if s != entry.rich_sample())]
    out = {}
    for feature in FEATURES_OF[entry.name]:
        for label, setting in feature_settings(feature).items():
            if not valid(entry, setting):
                raise AssertionError(f"{entry.name}: feature sample {label} {setting} is itself invalid")
            out[f"feature_{label}"] = merged(entry, setting, entry.samples, order)
    if "kourkoutas_beta" in FEATURES_OF[entry.name] and "use_bias_correction" in entry.hyperparameters:
        # The merged samples may take use_bias_correction=False from another sample; this one keeps
        # the bias correction by the product of the dynamic beta2s in play.
        setting = {"kourkoutas_beta": True, "beta2_min": 0.85, "use_bias_correction": True}
        out["feature_kourkoutas_bias_corrected"] = merged(entry, setting, entry.samples, order)
    return out


def flag_names(table: Mapping[str, Any]) -> list[str]:
    """The hyperparameters of Kind BOOL, CHOICE and OPTIONAL_CHOICE (compiled_optimizer aside: the
    designs run eagerly)."""
    kinds = (Kind.BOOL, Kind.CHOICE, Kind.OPTIONAL_CHOICE)
    return [n for n, h in table.items() if h.kind in kinds and n != "compiled_optimizer"]


# A run's tolerance classes, most specific first: a class names the tolerances (``<class>.<id>`` in
# conformance/tolerances.py) that replace the plain ones where it has them. Each test gets the
# hyperparameters and the parameters' shapes of the run.
SMALL = 64  # tensors below this many elements: rate-based tolerances count single elements
TOLERANCE_CLASSES = (
    ("small", f"every tensor of the run has fewer than {SMALL} elements",
     lambda h, shapes: max((math.prod(s) for s in shapes), default=0) < SMALL),
    ("orthograd", "OrthoGrad on", lambda h, shapes: h.get("orthograd") is not None),
    ("unclipped", "Adopt without its clip (clip_lambda=None)",
     lambda h, shapes: "clip_lambda" in h and h["clip_lambda"] is None),
    ("normed", "normed momentum", lambda h, shapes: bool(h.get("normed_momentum"))),
    ("cautious_wd", "cautious weight decay", lambda h, shapes: bool(h.get("cautious_wd"))),
)
# The feature each class belongs to, and each feature's own tolerance ids (docs/generate.py's matrix).
FEATURE_CLASSES = {"orthograd": ("orthograd",)}
FEATURE_IDS = {"kourkoutas_beta": ("kourkoutas",), "freeze_on_flip": ("prev_sign",)}


def tolerance_classes(hyper: Mapping[str, Any], shapes: Sequence[tuple[int, ...]]) -> tuple[str, ...]:
    return tuple(name for name, _, on in TOLERANCE_CLASSES if on(hyper, shapes))


def resolve_tolerance(optimizer: str, classes: Sequence[str], what: str) -> str:
    """The tolerance id for ``what``: the first class with an entry of its own (the optimizer's,
    else AdamW's: ``adamw.orthograd.fp32.step``), else the optimizer's plain one, else AdamW's."""
    for c in classes:
        for owner in (optimizer.lower(), "adamw"):
            if f"{owner}.{c}.{what}" in TOLERANCES:
                return f"{owner}.{c}.{what}"
    own = f"{optimizer.lower()}.{what}"
    return own if own in TOLERANCES else f"adamw.{what}"


def feature_tolerances(optimizer: str, feature: str) -> list[str]:
    """The ids a feature brings to an optimizer's runs besides its plain ones: its own states' and
    its classes' (each class id resolved as the harness resolves it)."""
    ids = [resolve_tolerance(optimizer, (), what) for what in FEATURE_IDS.get(feature, ())]
    for c in FEATURE_CLASSES.get(feature, ()):
        suffixes = {k.split(f".{c}.", 1)[1] for k in TOLERANCES if k.split(".", 1)[1].startswith(f"{c}.")}
        ids += sorted(resolve_tolerance(optimizer, (c,), what) for what in suffixes)
    return ids
