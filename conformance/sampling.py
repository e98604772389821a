"""Which of the exhaustive combinations a run checks.

The default run (``make test``) checks a seeded, reproducible sample of the slowest
combinations (the compiled kernels: compilation dominates their cost); ``ADVOPT_FULL=1``
(``make test-full``, run before an optimizer change lands) checks every one.
``ADVOPT_SAMPLE_SEED`` picks another sample, reproducibly.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

FULL = os.environ.get("ADVOPT_FULL", "0") == "1"
SEED = int(os.environ.get("ADVOPT_SAMPLE_SEED", "0"))


def sample(cases: Sequence[T], k: int, salt: str) -> list[T]:
    """All ``cases`` in a full run, else ``k`` of them chosen by (SEED, salt), in their order."""
    if FULL or len(cases) <= k:
        return list(cases)
    chosen = set(random.Random(f"{SEED}:{salt}").sample(range(len(cases)), k))
    return [c for i, c in enumerate(cases) if i in chosen]
