"""Regressions for disagreements this suite found between fast and reference, each fixed.

OrthoGrad of a gradient parallel to the weights: g_perp is rounding residue. fast took ||g_perp||
from the expanded float64 sum ||g||^2 - 2 proj <w,g> + proj^2 ||w||^2, not from the residue it
scaled, so its g' had no bounded norm (7e12 for g = 0.1 w). spec/directions.md now defines g' = 0
when ||g_perp||^2 <= 1e-12 ||g||^2 (ORTHO_PARALLEL) in every layer."""

from __future__ import annotations

import numpy as np
import torch

from conformance.compare import assert_close
from conformance.registry import ENTRIES


def test_orthograd_gradient_parallel_to_the_weights():
    """One float64 AdamW step with g = 0.1 w: fast's first moment (1 - beta1) g' against the reference's."""
    entry = ENTRIES["AdamW"]
    w = np.array([[0.3, -1.2, 0.7], [0.5, 2.0, -0.4]])
    p = torch.tensor(w, requires_grad=True)
    p.grad = torch.tensor(0.1 * w)
    fast_opt = entry.fast([p], orthograd="flattened", compiled_optimizer=False)
    ref = entry.reference([w.copy()], orthograd="flattened")
    fast_opt.step()
    ref.step([0.1 * w])
    assert_close(fast_opt.state[p]["exp_avg"], ref.state[0]["exp_avg"], entry.tol_id("fp64.step"), "exp_avg")
