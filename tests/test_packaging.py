"""Packaging promises: fast does not import sympy; docstring examples run."""

import doctest
import subprocess
import sys

import fast.adamw
import reference.adamw


def test_importing_fast_does_not_import_sympy():
    code = "import sys, fast; assert 'sympy' not in sys.modules, 'fast imported sympy'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docstring_examples_run():
    for module in (fast.adamw, reference.adamw):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_works_with_lr_scheduler_and_closure():
    import torch

    model = torch.nn.Linear(3, 1)
    opt = fast.AdamW(model.parameters(), lr=0.1, compiled_optimizer=False)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x, y = torch.randn(16, 3), torch.randn(16, 1)

    def closure():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    losses = [float(opt.step(closure)) for _ in range(3) if sched.step() is None or True]
    assert opt.param_groups[0]["lr"] == 0.1 * 0.5**3
    assert losses[-1] < losses[0]
