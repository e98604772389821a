"""Assemble the documentation source in docs/generated/ (mkdocs's docs_dir).

Run from anywhere: ``python docs/generate.py``. The folder is deleted and rebuilt every
time, so a page can never be stale. What it contains:

- ``index.md``, ``javascripts/``, ``stylesheets/``: hand-written, copied from docs/;
- ``spec/<page>.md``: every spec/*.md with its markers replaced by formulas and tables
  computed from ``spec``: ``<!-- generated: rule NAME -->`` (the sympy rule and its
  variants), ``<!-- generated: hyperparameters NAME -->`` (table and constraints),
  ``<!-- generated: write -->`` (weight decay and the write) and, on the pages of
  ``SECTION_PAGES``, one marker per section of ``render.SECTIONS`` (e.g.
  ``<!-- generated: factors state_storage -->``), NAME being the page's name;
- ``api.md``: mkdocstrings directives for each registered optimizer class;
- ``tolerances.md``: the conformance tolerance table;
- ``directions.md``: the optimizer x direction feature matrix with the tolerance ids that apply;
- ``results/``: benchmark and demo pages (docs/results.py), with results when present;
- ``assets/mathjax/``: MathJax copied from an installed PyPI package (no CDN at view time);
- ``_nav.yml``: the navigation, inherited by mkdocs.yml, so pages come from the registry.

Adding an optimizer = one ``Optimizer(...)`` line in ``OPTIMIZERS`` plus its spec page.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import NoReturn

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
OUT = DOCS / "generated"
RESULTS = REPO / "benchmarks" / "results"
# The spec, conformance and the optimizers are imported from the working tree, installed or not.
sys.path.insert(0, str(REPO))

import render  # noqa: E402  (docs/ is this script's directory, so it is importable)
import results  # noqa: E402


@dataclass(frozen=True)
class Optimizer:
    """The docs of one optimizer: where its prose lives and where its truth lives."""

    page: str  # spec/<page>.md, also the NAME in its markers
    rule: str  # module with rule(staged=True, **flags), STAGE_SYMBOLS and VARIANTS
    hparams: str  # module with ALL (name -> Hyperparameter) and CONSTRAINTS
    cls: str  # class name exported by both ``fast`` and ``reference``


OPTIMIZERS: list[Optimizer] = [
    Optimizer("adamw", "spec.adamw", "spec.hparams.adamw", "AdamW"),
    Optimizer("adopt", "spec.adopt", "spec.hparams.adopt", "Adopt"),
    Optimizer("lion", "spec.lion", "spec.hparams.lion", "Lion"),
    Optimizer("signsgd", "spec.signsgd", "spec.hparams.signsgd", "SignSGD"),
    Optimizer("simplified_ademamix", "spec.simplified_ademamix", "spec.hparams.simplified_ademamix",
              "SimplifiedAdEMAMix"),
    Optimizer("prodigy", "spec.prodigy", "spec.hparams.prodigy", "Prodigy"),
    Optimizer("prodigy_lion", "spec.prodigy_lion", "spec.hparams.prodigy_lion", "ProdigyLion"),
    Optimizer("adafactor", "spec.adafactor", "spec.hparams.adafactor", "Adafactor"),
    Optimizer("came", "spec.came", "spec.hparams.came", "CAME"),
    Optimizer("automagic", "spec.automagic", "spec.hparams.automagic", "Automagic"),
    Optimizer("automagic_came", "spec.automagic_came", "spec.hparams.automagic_came", "AutomagicCAME"),
]

# Pages about machinery every optimizer shares: their hyperparameter tables are slices of
# spec.hparams.common (page -> (attribute, names to show or None for all)).
SHARED_TABLES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "weight_decay": ("WRITE", None),
    "stochastic_rounding": ("RUNTIME", ("stochastic_rounding", "seed")),
}

# Pages about machinery with a sympy module of their own (page -> module with HYPERPARAMETERS
# and CONSTRAINTS): every section render.SECTIONS[page] knows, and the hyperparameter table,
# must appear on the page as a marker.
SECTION_PAGES: dict[str, str] = {
    "state_storage": "spec.state_storage",
    "directions": "spec.directions",
}

MARKER = re.compile(r"^<!--\s*generated:\s*(\w+)(?:\s+(\w+))?\s*-->\s*$", re.MULTILINE)
NAV_FILE = "_nav.yml"
# Only what tex-chtml.js loads at run time (fonts, lazily loaded TeX packages, the menu and
# its accessibility parts); the other bundles of the package are not needed.
MATHJAX_PARTS = (
    "tex-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y", "sre",
)


def fail(message: str) -> NoReturn:
    raise SystemExit(f"docs/generate.py: {message}")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n", encoding="utf-8")


# -- spec pages ------------------------------------------------------------------------------


def shared_table(name: str) -> str:
    common: ModuleType = importlib.import_module("spec.hparams.common")
    attr, names = SHARED_TABLES[name]
    table = getattr(common, attr)
    if names is not None:
        table = {n: table[n] for n in names}
    return render.render_hparams(table)


def expand_markers(page: str, text: str, opt: Optimizer | None) -> str:
    """Replace each marker of ``page`` by its generated Markdown; unknown markers fail."""
    found: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        found.add(kind)
        if kind == "write" and name is None:
            return render.render_write()
        if name != page:
            fail(f"spec/{page}.md: marker {match.group(0)!r} names another page")
        if kind == "rule" and opt is not None:
            hp = importlib.import_module(opt.hparams)
            return render.render_rule(importlib.import_module(opt.rule), hp.ALL)
        if kind == "mask" and opt is not None and hasattr(importlib.import_module(opt.rule), "MASK_CODE"):
            return render.render_mask(importlib.import_module(opt.rule))
        if kind == "hyperparameters" and opt is not None:
            hp = importlib.import_module(opt.hparams)
            return render.render_hparams(hp.ALL, hp.CONSTRAINTS)
        if kind == "hyperparameters" and page in SHARED_TABLES:
            return shared_table(page)
        if page in SECTION_PAGES:
            module = importlib.import_module(SECTION_PAGES[page])
            if kind == "hyperparameters":
                return render.render_hparams(module.HYPERPARAMETERS, module.CONSTRAINTS)
            if kind in render.SECTIONS[page]:
                return render.SECTIONS[page][kind](module)
        fail(f"spec/{page}.md: no generator for marker {match.group(0)!r}")

    out = MARKER.sub(replace, text)
    if opt is not None and not {"rule", "hyperparameters"} <= found:
        fail(f"spec/{page}.md needs both '<!-- generated: rule {page} -->' and "
             f"'<!-- generated: hyperparameters {page} -->'")
    if page in SECTION_PAGES:
        missing = sorted((set(render.SECTIONS[page]) | {"hyperparameters"}) - found)
        if missing:
            wanted = ", ".join(f"'<!-- generated: {m} {page} -->'" for m in missing)
            fail(f"spec/{page}.md lacks the marker(s) {wanted}")
    if "<!-- generated" in out:
        fail(f"spec/{page}.md: malformed marker (expected '<!-- generated: KIND NAME -->')")
    return out


def spec_pages() -> list[str]:
    """Write docs/generated/spec/*.md; return their nav paths, optimizers first."""
    sources = {p.stem: p for p in sorted((REPO / "spec").glob("*.md"))}
    by_page = {o.page: o for o in OPTIMIZERS}
    missing = sorted(set(by_page) - set(sources))
    if missing:
        fail(f"registered optimizer(s) without a spec page: {', '.join(f'spec/{m}.md' for m in missing)}")
    order = [o.page for o in OPTIMIZERS] + [p for p in sources if p not in by_page]
    for page in order:
        text = sources[page].read_text(encoding="utf-8")
        write(OUT / "spec" / f"{page}.md", expand_markers(page, text, by_page.get(page)))
    return [f"spec/{page}.md" for page in order]


# -- API and tolerances ----------------------------------------------------------------------


def api_page() -> str:
    lines = [
        "# API",
        "",
        "Rendered from the docstrings. `fast.X` is the production optimizer "
        "(a `torch.optim.Optimizer`); `reference.X` is the float64 NumPy implementation "
        "it is tested against, with the same hyperparameters.",
        "",
    ]
    for opt in OPTIMIZERS:
        lines += [f"## {opt.cls}", "", f"::: fast.{opt.cls}", "", f"::: reference.{opt.cls}", ""]
    utilities = ("fast.AdafactorSchedule", "fast.accumulate_grads", "fast.accumulate.GradAccumulator",
                 "fast.fuse_backward", "fast.fused_backward.FusedBackward")
    lines += ["## Utilities", ""] + [line for name in utilities for line in (f"::: {name}", "")]
    return "\n".join(lines)


def num(x: float) -> str:
    return "0" if x == 0 else f"{x:.3g}"


def anchor(key: str) -> str:
    """The id of a tolerance's section on tolerances.md."""
    return "tol-" + re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


def tolerances_page() -> str:
    """A compact table of the numbers, then one section per id with its reason (reasons are
    paragraphs; squeezed into a table column they become unreadable)."""
    from conformance.tolerances import TOLERANCES

    rows = [
        "| Id | rtol | atol | max error rate |",
        "| --- | --- | --- | --- |",
    ]
    reasons = ["## Reasons", ""]
    for key, t in TOLERANCES.items():
        rows.append(
            f"| [`{key}`](#{anchor(key)}) | {num(t.rtol)} | {num(t.atol)} | {num(t.max_error_rate)} |"
        )
        reasons += [f"### `{key}` {{ #{anchor(key)} }}", "", render.md_escape(t.reason), ""]
    return "\n".join([
        "# Conformance tolerances",
        "",
        "Every comparison in the conformance suite looks its tolerance up by id in "
        "`conformance/tolerances.py`; tests contain no numeric literals. An element passes when",
        "",
        r"$$|\mathrm{actual} - \mathrm{expected}| \le \mathrm{atol} + "
        r"\mathrm{rtol}\,|\mathrm{expected}|,$$",
        "",
        "and a comparison passes when at most a fraction *max error rate* of the elements fail "
        "(0: none may). Each reason states the derivation or measurement behind the numbers.",
        "",
        *rows,
        "",
        *reasons,
    ])


def directions_page() -> str:
    """The optimizer x direction feature matrix, from spec's FEATURES_OF, and the tolerance ids
    each supported feature's conformance runs use, from the tolerance table."""
    from conformance.features import FEATURE_CLASSES, TOLERANCE_CLASSES, feature_tolerances, resolve_tolerance
    from conformance.registry import ENTRIES
    from conformance.tolerances import TOLERANCES
    from spec.hparams.directions import DIRECTION_FEATURES, FEATURES_OF

    def value(key: str) -> str:
        t = TOLERANCES[key]
        parts = [f"rtol {num(t.rtol)}", f"atol {num(t.atol)}"]
        parts += [f"{num(t.atol_of_max)}·max" for _ in [0] if t.atol_of_max]
        parts += [f"rate {num(t.max_error_rate)}" for _ in [0] if t.max_error_rate]
        return f"[`{key}`](tolerances.md#{anchor(key)}) ({', '.join(parts)})"

    plain = ("fp64.step", "fp32.step", "fp32.state", "bf16_sr.param", "bf16.state", "fp16.param", "fp16.state")
    lines = [
        "# Direction features: support and tolerances",
        "",
        "Generated from `FEATURES_OF` (spec/hparams/directions.py) and the conformance tolerance table. "
        "A feature an optimizer does not take is an unknown argument (TypeError). Every supported feature "
        "runs fast against reference in the conformance suite (every parameter dtype, dense and factored "
        "states, an all-pairs design over all flags and random combinations); the ids below are the "
        "tolerances those comparisons use. See [spec/directions.md](spec/directions.md) for the features "
        "and [Tolerances](tolerances.md) for each id's reason.",
        "",
        "| Optimizer | " + " | ".join(f"`{f}`" for f in DIRECTION_FEATURES) + " |",
        "| --- |" + " --- |" * len(DIRECTION_FEATURES),
    ]
    for name, features in FEATURES_OF.items():
        lines.append(f"| {name} | " + " | ".join("✓" if f in features else "—" for f in DIRECTION_FEATURES) + " |")
    lines += ["", "## Tolerance classes", "",
              "A run's configuration puts it in classes, most specific first; a class replaces an id "
              "`<optimizer>.<id>` by `<optimizer>.<class>.<id>` (or AdamW's) where the table has one.", ""]
    lines += [f"- `{c}`: {text}" for c, text, _ in TOLERANCE_CLASSES]
    for name, features in FEATURES_OF.items():
        group = bool(ENTRIES[name].group_state)
        lines += ["", f"## {name}", "",
                  "Plain ids (every feature's runs, unless a class replaces them): "
                  + ", ".join(value(resolve_tolerance(name, (), w)) for w in plain) + ".", "",
                  "| Feature | Tolerance classes | Its own tolerance ids |", "| --- | --- | --- |"]
        for f in features:
            ids = [k for k in feature_tolerances(name, f) if group or not k.endswith(".group")]
            classes = ", ".join(f"`{c}`" for c in FEATURE_CLASSES.get(f, ())) or "—"
            lines.append(f"| `{f}` | {classes} | {'<br>'.join(map(value, ids)) or 'the plain ids'} |")
    return "\n".join(lines)


# -- assets and navigation -------------------------------------------------------------------


def copy_mathjax(dest: Path) -> None:
    """MathJax 3 from the PyPI package django-static-mathjax (a dev dependency)."""
    # Another distribution could also provide a top-level "mathjax"; check for the files.
    spec = importlib.util.find_spec("mathjax")
    locations = list(spec.submodule_search_locations or []) if spec else []
    root = Path(locations[0]) / "static" / "mathjax" if locations else None
    if root is None or not (root / "es5" / "tex-chtml.js").is_file():
        fail("MathJax assets not found: install the dev extras (pip install -e '.[dev]', "
             "which brings django-static-mathjax)")
    for part in MATHJAX_PARTS:
        src = root / "es5" / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)
    shutil.copy2(root / "LICENSE", dest / "LICENSE")  # Apache-2.0 asks for it with copies


def copy_handwritten() -> None:
    for page in DOCS.glob("*.md"):
        shutil.copy2(page, OUT / page.name)
    for folder in ("javascripts", "stylesheets"):
        if (DOCS / folder).is_dir():
            shutil.copytree(DOCS / folder, OUT / folder)


def nav(spec: list[str], result_pages: list[str]) -> str:
    """The nav as YAML (JSON strings are valid YAML scalars). Spec titles come from each H1."""
    q = json.dumps
    lines = ["# Written by docs/generate.py; mkdocs.yml inherits it.", "nav:",
             f"  - Home: {q('index.md')}", "  - Specification:"]
    lines += [f"      - {q(p)}" for p in spec]
    lines += [f"  - API: {q('api.md')}", f"  - Tolerances: {q('tolerances.md')}",
              f"  - Direction features: {q('directions.md')}"]
    lines += [f"  - {q(p)}" for p in result_pages]
    return "\n".join(lines)


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    copy_handwritten()
    copy_mathjax(OUT / "assets" / "mathjax")
    spec = spec_pages()
    write(OUT / "api.md", api_page())
    write(OUT / "tolerances.md", tolerances_page())
    write(OUT / "directions.md", directions_page())
    result_pages = results.write_pages(RESULTS, OUT)
    write(OUT / NAV_FILE, nav(spec, result_pages))


if __name__ == "__main__":
    main()
