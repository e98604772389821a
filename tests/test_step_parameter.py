"""One parameter at a time, as trainers' fused back passes step (OneTrainer, kohya)."""

import pytest
import torch

import fast


def test_step_parameter_signatures_of_the_trainers():
    """OneTrainer's fused back pass calls step_parameter(p, group, i), kohya's step_param(p, group);
    the group may be omitted (found from p). Each equals a normal step."""
    torch.manual_seed(0)
    ws = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(4)]
    for w in ws[1:]:
        with torch.no_grad():
            w.copy_(ws[0])
    g = torch.randn(5, 3)
    opts = [fast.AdamW([w], lr=1e-2, compiled_optimizer=False) for w in ws]
    for w in ws:
        w.grad = g.clone()
    opts[0].step()
    opts[1].step_parameter(ws[1], opts[1].param_groups[0], 0)
    opts[2].step_param(ws[2], opts[2].param_groups[0])
    opts[3].step_parameter(ws[3])
    for w in ws[1:]:
        assert torch.equal(w, ws[0])
    with pytest.raises(ValueError, match="not in any param group"):
        opts[0].step_parameter(torch.nn.Parameter(torch.zeros(2)))
