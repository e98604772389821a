"""Small CPU training tasks shared by the benchmarks (no downloads: scikit-learn's bundled digits).

- ``digits_data`` / ``digits_mlp`` / ``batch_indices``: the MLP classifier of demo.py.
- ``DigitsTask``: that classifier as a quality task (held-out cross-entropy at a step budget).
- ``DiffusionLoRATask``: a denoising-diffusion MLP on the 8x8 digits, pre-trained on classes 0-4,
  then fine-tuned on classes 5-9 through LoRA adapters (held-out denoising MSE at a step budget).

A task's ``build(seed, dtype)`` gives a model and its trainable parameters; ``train_loss(model, gen)``
draws one minibatch from ``gen`` (the same draws for every optimizer at one seed, as the draws never
depend on the model); ``heldout_loss(model)`` is deterministic (fixed images, noise and timesteps).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import tempfile
from dataclasses import dataclass

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


# -- the digits classifier (also used by demo.py) ----------------------------------------------
@functools.cache
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    X, y = load_digits(return_X_y=True)
    return torch.tensor(X, dtype=torch.float64), torch.tensor(y)


def digits_data(seed: int) -> Data:
    """(X_train, y_train, X_test, y_test): a stratified 75/25 split, standardised with training
    statistics only; constant (always-zero) pixels get sd 1."""
    X, y = _digits()
    Xtr, Xte, ytr, yte = train_test_split(X.numpy(), y.numpy(), test_size=0.25, random_state=seed,
                                          stratify=y.numpy())
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd[sd == 0] = 1.0
    f = torch.float32
    return (torch.tensor((Xtr - mu) / sd, dtype=f), torch.tensor(ytr),
            torch.tensor((Xte - mu) / sd, dtype=f), torch.tensor(yte))


def digits_mlp(hidden: int, seed: int, dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(seed)  # the same fp32 init for every optimizer; bf16 runs round that init
    model = torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, 10),
    )
    return model.to(dtype)


def batch_indices(n: int, batch: int, steps: int, seed: int) -> list[torch.Tensor]:
    """Shuffled epochs, drawn once so every run sees the same minibatches in the same order."""
    gen = torch.Generator().manual_seed(seed)
    out: list[torch.Tensor] = []
    while len(out) < steps:
        perm = torch.randperm(n, generator=gen)
        out += [perm[i:i + batch] for i in range(0, n - batch + 1, batch)]
    return out[:steps]


# -- quality tasks -----------------------------------------------------------------------------
@dataclass
class Task:
    """A training problem with fixed hyperparameters for every AdamW row."""

    name: str
    metric: str  # what heldout_loss measures, for the report
    lr: float
    weight_decay: float
    steps: int  # the step budget of a full run
    quick_steps: int
    eval_every: int  # held-out evaluations for the curves; the last step is always evaluated
    batch: int

    def prepare(self) -> None:
        """Seed-independent set-up shared by every row of a run (data, pre-training)."""

    def build(self, seed: int, dtype: torch.dtype) -> tuple[torch.nn.Module, list[torch.nn.Parameter]]:
        raise NotImplementedError

    def train_loss(self, model: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def heldout_loss(self, model: torch.nn.Module) -> float:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass
class DigitsTask(Task):
    hidden: int = 128
    split_seed: int = 0  # the train/held-out split is fixed; seeds vary init and batches only

    def prepare(self) -> None:
        self.data = digits_data(self.split_seed)

    def build(self, seed: int, dtype: torch.dtype) -> tuple[torch.nn.Module, list[torch.nn.Parameter]]:
        model = digits_mlp(self.hidden, seed, dtype)
        return model, list(model.parameters())

    def train_loss(self, model: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
        Xtr, ytr = self.data[0], self.data[1]
        idx = torch.randint(len(Xtr), (self.batch,), generator=gen)
        dtype = next(model.parameters()).dtype
        return torch.nn.functional.cross_entropy(model(Xtr[idx].to(dtype)).float(), ytr[idx])  # fp32 loss

    @torch.no_grad()
    def heldout_loss(self, model: torch.nn.Module) -> float:
        Xte, yte = self.data[2], self.data[3]
        dtype = next(model.parameters()).dtype
        return torch.nn.functional.cross_entropy(model(Xte.to(dtype)).float(), yte).item()

    def describe(self) -> str:
        n = sum(p.numel() for p in digits_mlp(self.hidden, 0, torch.float32).parameters())
        return (f"MLP 64-{self.hidden}-{self.hidden}-10 ({n:,} parameters, all trained) on scikit-learn's "
                f"digits, fixed stratified split (1,347 training / 450 held-out images), batch {self.batch} "
                "drawn with replacement; metric: held-out cross-entropy")


# -- diffusion + LoRA --------------------------------------------------------------------------
def cosine_alpha_bar(T: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: cumulative signal share alpha_bar at t = 1..T, with
    each step's beta capped at 0.999 (the schedule's end would otherwise divide by ~0)."""
    f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0).float()


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], 1)


class EpsMLP(torch.nn.Module):
    """Predicts the noise of a noisy 8x8 image (64 pixels) given its timestep."""

    def __init__(self, width: int = 256, temb: int = 64) -> None:
        super().__init__()
        self.temb = temb
        self.time = torch.nn.Sequential(torch.nn.Linear(temb, width), torch.nn.SiLU(), torch.nn.Linear(width, width))
        self.inp = torch.nn.Linear(64, width)
        self.hidden = torch.nn.ModuleList([torch.nn.Linear(width, width) for _ in range(2)])
        self.out = torch.nn.Linear(width, 64)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.silu(self.inp(x) + self.time(timestep_embedding(t, self.temb)))
        for layer in self.hidden:
            h = h + torch.nn.functional.silu(layer(h))  # residual: eases pre-training at this depth
        return self.out(h)


class LoRALinear(torch.nn.Module):
    """y = W x + b + (alpha / r) B A x with W, b frozen. B starts at 0, so fine-tuning starts exactly
    at the pre-trained model; A is random, so B's first gradients are not 0."""

    def __init__(self, base: torch.nn.Linear, rank: int, alpha: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.base = base.requires_grad_(False)
        self.scale = alpha / rank
        a = torch.empty(rank, base.in_features)
        torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # nn.Linear's own init, on A's fan-in
        self.A = torch.nn.Parameter(a.to(dtype))
        self.B = torch.nn.Parameter(torch.zeros(base.out_features, rank, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lora = (x.to(self.A.dtype) @ self.A.T) @ self.B.T
        return self.base(x) + self.scale * lora.to(x.dtype)


def add_lora(model: torch.nn.Module, rank: int, alpha: float, dtype: torch.dtype) -> list[torch.nn.Parameter]:
    """Replace every nn.Linear inside ``model`` by a LoRALinear; return the adapters' parameters."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, LoRALinear(child, rank, alpha, dtype))
    return [p for m in model.modules() if isinstance(m, LoRALinear) for p in (m.A, m.B)]


@dataclass
class DiffusionLoRATask(Task):
    timesteps: int = 100
    width: int = 256
    rank: int = 4
    alpha: float = 8.0
    pretrain_steps: int = 3000
    pretrain_lr: float = 2e-3
    heldout_draws: int = 4  # (timestep, noise) pairs per held-out image
    pretrain_classes: tuple[int, ...] = (0, 1, 2, 3, 4)

    def prepare(self) -> None:
        X, y = _digits()
        x = (X / 8.0 - 1.0).float()  # pixel values 0..16 -> [-1, 1]
        pre = torch.isin(y, torch.tensor(self.pretrain_classes))
        self.alpha_bar = cosine_alpha_bar(self.timesteps)
        idx = torch.nonzero(~pre).squeeze(1)
        tr, te = train_test_split(idx.numpy(), test_size=0.25, random_state=0, stratify=y[idx].numpy())
        self.train_x, self.heldout_x = x[torch.tensor(tr)], x[torch.tensor(te)]
        gen = torch.Generator().manual_seed(1234)  # the metric's noise and timesteps, fixed forever
        reps = self.heldout_x.repeat(self.heldout_draws, 1)
        self.heldout_t = torch.randint(self.timesteps, (len(reps),), generator=gen)
        self.heldout_eps = torch.randn(reps.shape, generator=gen)
        self.heldout_xt = self.noised(reps, self.heldout_t, self.heldout_eps)
        self.pretrained = self._pretrained(x[pre])

    def noised(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar[t][:, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def _denoise_loss(self, model: torch.nn.Module, x0: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        t = torch.randint(self.timesteps, (len(x0),), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        return torch.nn.functional.mse_loss(model(self.noised(x0, t, eps), t).float(), eps)

    def _pretrained(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The base model's weights, trained once with torch AdamW and cached on disk outside the
        repository (a temp folder), keyed by everything that determines them."""
        key = repr((self.timesteps, self.width, self.pretrain_steps, self.pretrain_lr, self.pretrain_classes,
                    self.batch, torch.__version__, 2))  # bump the last entry when the recipe changes
        path = os.path.join(tempfile.gettempdir(), "advopt-bench-cache",
                            f"diffusion-{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt")
        if os.path.isfile(path):
            return torch.load(path, weights_only=True)
        torch.manual_seed(0)
        model = EpsMLP(self.width)
        opt = torch.optim.AdamW(model.parameters(), lr=self.pretrain_lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.pretrain_steps)
        gen = torch.Generator().manual_seed(0)
        for _ in range(self.pretrain_steps):
            idx = torch.randint(len(x), (self.batch,), generator=gen)
            loss = self._denoise_loss(model, x[idx], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)  # atomic: a concurrent run never reads half a file
        return state

    def build(self, seed: int, dtype: torch.dtype) -> tuple[torch.nn.Module, list[torch.nn.Parameter]]:
        model = EpsMLP(self.width)
        model.load_state_dict(self.pretrained)
        torch.manual_seed(seed)  # the adapters' A
        return model, add_lora(model, self.rank, self.alpha, dtype)

    def train_loss(self, model: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.train_x), (self.batch,), generator=gen)
        return self._denoise_loss(model, self.train_x[idx], gen)

    @torch.no_grad()
    def heldout_loss(self, model: torch.nn.Module) -> float:
        pred = model(self.heldout_xt, self.heldout_t).float()
        return torch.nn.functional.mse_loss(pred, self.heldout_eps).item()

    def describe(self) -> str:
        model, lora = self.build(0, torch.float32)
        n_base = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        return (f"epsilon-prediction MLP (width {self.width}, 2 residual blocks, sinusoidal timestep embedding; "
                f"{n_base:,} frozen parameters) on the 8x8 digits scaled to [-1, 1], cosine DDPM schedule with "
                f"{self.timesteps} steps, pre-trained on classes 0-4 ({self.pretrain_steps} steps of torch AdamW, "
                f"once per run); fine-tuned on classes 5-9 through rank-{self.rank} LoRA adapters "
                f"(alpha {self.alpha:g}) on all {len(lora) // 2} linear layers ({sum(p.numel() for p in lora):,} "
                f"trainable parameters), batch {self.batch}; metric: denoising MSE on "
                f"{len(self.heldout_x)} held-out images of classes 5-9 x {self.heldout_draws} fixed "
                "(timestep, noise) draws")


def make_tasks() -> dict[str, Task]:
    """Hyperparameters chosen with dense AdamW: it trains well within the budget, and the held-out
    loss is still above its floor at the last step (so the formats' differences stay visible)."""
    return {
        "digits": DigitsTask("digits", "held-out cross-entropy", lr=3e-4, weight_decay=0.01, steps=600,
                             quick_steps=300, eval_every=25, batch=64),
        "diffusion-lora": DiffusionLoRATask("diffusion-lora", "held-out denoising MSE", lr=1e-3,
                                            weight_decay=0.01, steps=600, quick_steps=200, eval_every=25,
                                            batch=128),
    }
