"""``AdafactorSchedule``: a scheduler that reports Adafactor's own step size, as transformers'
does, for trainers that log ``get_last_lr()``."""

from __future__ import annotations

from torch.optim.lr_scheduler import LRScheduler

from fast.adafactor import Adafactor


class AdafactorSchedule(LRScheduler):
    """Reports, per param group, the step size lr_t that Adafactor used in its last step for the
    group's first parameter (``initial_lr`` before that parameter has stepped).

    transformers' ``AdafactorSchedule`` is a ``LambdaLR`` whose ``step()`` also writes the value
    into ``group["lr"]``; with ``relative_step=False`` and ``scale_parameter=True`` that feeds
    lr * RMS(p) back in as the next lr. This one only reports: it never changes a group's lr, so
    it can sit beside another scheduler's role in a trainer without changing training.

    Examples:
        >>> import torch, fast
        >>> w = torch.nn.Parameter(torch.ones(3, 2))
        >>> opt = fast.Adafactor([w], compiled_optimizer=False)
        >>> sched = fast.AdafactorSchedule(opt)
        >>> sched.get_last_lr()
        [0.0]
        >>> w.grad = torch.ones(3, 2); opt.step(); sched.step()
        >>> sched.get_last_lr()  # min(1e-2, 1/sqrt(1)) * max(1e-3, RMS(p) = 1)
        [0.01]
    """

    def __init__(self, optimizer: Adafactor, initial_lr: float = 0.0) -> None:
        if not isinstance(optimizer, Adafactor):
            raise TypeError(f"AdafactorSchedule reports fast.Adafactor's step size; got {type(optimizer).__name__}")
        self.initial_lr = float(initial_lr)
        for group in optimizer.param_groups:
            group["initial_lr"] = self.initial_lr
        super().__init__(optimizer)
        for group in optimizer.param_groups:
            group.pop("initial_lr", None)

    def get_lr(self) -> list[float]:
        opt = self.optimizer
        out = []
        for group in opt.param_groups:
            state = opt.state.get(group["params"][0], {}) if group["params"] else {}
            out.append(opt.step_size(group, state) if state.get("step", 0) else self.initial_lr)
        return out

    def step(self, epoch: int | None = None) -> None:
        """Advance the count and read the step sizes; no param group's ``lr`` is written."""
        self.last_epoch += 1
        self._last_lr = self.get_lr()
