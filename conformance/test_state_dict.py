"""Save mid-run, torch.load(weights_only=True), rebuild, continue: bit-identical to the
uninterrupted run, dtypes intact, generator state included."""

from __future__ import annotations

import io

import pytest
import torch

import fast
from conformance.inputs import TORCH_DTYPES, grads_for_step, group_split, initial_values, make_params
from conformance.registry import ENTRIES, STORAGE

SAMPLES = [
    {"lr": 2e-2, "weight_decay": 0.1},
    {"lr": 2e-2, "betas": (0.0, 0.9), "eps": None, "cautious_wd": True, "weight_decay": 0.3},
    {"lr": 2e-2, "nesterov": True, "nesterov_coef": 0.5, "use_atan2": True, "normed_momentum": True},
]


def _make(dtype: str, hyper: dict, params=None, compiled=False, cls=fast.AdamW, group1=None):
    params = params if params is not None else make_params(initial_values(5), dtype)
    g0, g1 = group_split(params)
    group1 = {"lr": 5e-3} if group1 is None else group1
    opt = cls([{"params": g0}, {"params": g1, **group1}], compiled_optimizer=compiled, **hyper)
    return params, opt


def _steps(params, opt, steps):
    for step in steps:
        for p, g in zip(params, grads_for_step(step, 5)):
            p.grad = None if g is None else torch.tensor(g, dtype=p.dtype).reshape(p.shape)
        opt.step()


CASES = [("AdamW", d, h) for d in ("float32", "bfloat16", "float16") for h in SAMPLES]
CASES += [("AdamW", d, {**SAMPLES[0], **st}) for d in ("float32", "bfloat16") for st in STORAGE.values()]
# Every other optimizer: its second sample (off the defaults), dense and in the compressed formats.
CASES += [
    (e.name, d, {**list(e.samples.values())[1], **st})
    for e in ENTRIES.values() if e.name != "AdamW"
    for d in ("float32", "bfloat16")
    for st in ({}, {"state_precision": "factored"}, {"state_precision": "int8_sr"})
    if not st or any(st.items() <= v.items() for v in e.storage.values())
]


@pytest.mark.parametrize(("name", "dtype", "hyper"), CASES, ids=lambda x: x if isinstance(x, str) else "-".join(
    f"{k}={v}" for k, v in x.items() if k in ("state_precision", "factored_2nd", "vector_reshape", "betas")))
def test_resume_is_bit_identical(name, dtype, hyper):
    cls = ENTRIES[name].fast
    group1 = None if name == "AdamW" else ENTRIES[name].group1
    params, opt = _make(dtype, hyper, cls=cls, group1=group1)
    _steps(params, opt, range(3))
    buf = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buf)
    _steps(params, opt, range(3, 6))

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    resumed = [p.clone().requires_grad_(p.requires_grad) for p in saved["params"]]
    for r, p in zip(resumed, params):
        r.requires_grad_(p.requires_grad)
    resumed, opt2 = _make(dtype, hyper, params=resumed, cls=cls, group1=group1)
    opt2.load_state_dict(saved["opt"])
    for p, q in zip(params, resumed):  # states keep their own dtypes (fp32 factors, uint8 signs, ...)
        for key, value in opt2.state.get(q, {}).items():
            if torch.is_tensor(value):
                assert value.dtype == opt.state[p][key].dtype, (key, value.dtype)
    _steps(resumed, opt2, range(3, 6))
    for i, (a, b) in enumerate(zip(params, resumed)):
        assert a.dtype == b.dtype == TORCH_DTYPES[dtype]
        assert torch.equal(a, b), f"param {i} differs after resume"
        sa, sb = opt.state.get(a, {}), opt2.state.get(b, {})
        assert sa.keys() == sb.keys()
        for k in sa:
            assert (torch.equal(sa[k], sb[k]) if torch.is_tensor(sa[k]) else sa[k] == sb[k]), (i, k)
    lr1 = (group1 or {"lr": 5e-3}).get("lr", opt.defaults["lr"])
    assert opt.param_groups[1]["lr"] == opt2.param_groups[1]["lr"] == lr1
    for g1, g2 in zip(opt.param_groups, opt2.param_groups):  # incl. Prodigy's d, d_max, d_numerator, k
        assert {k: v for k, v in g1.items() if k != "params"} == {k: v for k, v in g2.items() if k != "params"}


def test_state_dict_holds_keys_not_generator_states():
    """The random draws are counter-based: the state_dict keeps the seed (a constructor argument)
    and each parameter's key (its position, in its state), no generator state; a state_dict of an
    older release with generator states still loads (they are ignored)."""
    params, opt = _make("bfloat16", SAMPLES[0])
    _steps(params, opt, range(2))
    sd = opt.state_dict()
    assert "rng" not in sd
    keys = [sd["state"][k]["rng_key"] for k in sorted(sd["state"])]
    assert keys == sorted(sd["state"]), keys  # positions in the flattened parameter order
    legacy = {**sd, "rng": {"cpu": torch.Generator().get_state()}}
    _, opt2 = _make("bfloat16", SAMPLES[0])
    opt2.load_state_dict(legacy)


def test_keys_survive_add_param_group_and_round_trip():
    """add_param_group appends: existing keys do not move and new parameters get new keys, also
    after a state_dict round trip into a rebuilt optimizer."""
    a, b, c = (torch.nn.Parameter(torch.randn(4, 3, dtype=torch.bfloat16)) for _ in range(3))
    opt = fast.AdamW([a, b], compiled_optimizer=False, seed=5)
    for p in (a, b):
        p.grad = torch.ones_like(p)
    opt.step()
    opt.add_param_group({"params": [c]})
    c.grad = torch.ones_like(c)
    opt.step()
    assert [opt.state[p]["rng_key"] for p in (a, b, c)] == [0, 1, 2]
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    rebuilt = fast.AdamW([a, b], compiled_optimizer=False, seed=5)
    rebuilt.add_param_group({"params": [c]})
    rebuilt.load_state_dict(torch.load(buf, weights_only=True))
    assert [rebuilt.state[p]["rng_key"] for p in (a, b, c)] == [0, 1, 2]


def test_load_rejects_mismatched_groups():
    params, opt = _make("float32", SAMPLES[0])
    _steps(params, opt, range(1))
    other = fast.AdamW([torch.zeros(3, requires_grad=True)])
    with pytest.raises(ValueError):
        other.load_state_dict(opt.state_dict())


LAYOUTS = {  # key -> (saved with, loaded with): only ``key`` differs
    "state_precision": ({"state_precision": "factored"}, {"state_precision": "int8_sr"}),
    "factored_2nd": ({"state_precision": "fp32"}, {"state_precision": "fp32", "factored_2nd": True}),
    "vector_reshape": ({"state_precision": "factored", "vector_reshape": True}, {"state_precision": "factored"}),
}


@pytest.mark.parametrize("key", list(LAYOUTS))
def test_load_rejects_another_storage_layout(key):
    saved_with, loaded_with = LAYOUTS[key]
    params, opt = _make("float32", {**SAMPLES[0], **saved_with})
    _steps(params, opt, range(1))
    _, other = _make("float32", {**SAMPLES[0], **loaded_with})
    with pytest.raises(ValueError, match=key):
        other.load_state_dict(opt.state_dict())


@pytest.mark.parametrize("precision", ["int8_sr", "fp16"])
def test_checkpoint_of_the_old_state_format_raises(precision):
    """A state_dict without the format version (written before the minifloat codes) whose
    states are int8_sr or fp16 is refused naming the version; other formats still load."""
    p = torch.nn.Parameter(torch.randn(8, 8))
    p.grad = torch.randn(8, 8)
    opt = fast.AdamW([p], state_precision=precision, compiled_optimizer=False)
    opt.step()
    sd = opt.state_dict()
    assert sd["state_format"] == 2
    del sd["state_format"]
    with pytest.raises(ValueError, match="state format version 1"):
        fast.AdamW([p], state_precision=precision, compiled_optimizer=False).load_state_dict(sd)
    dense = fast.AdamW([p], compiled_optimizer=False)
    dense.step()
    old = dense.state_dict()
    del old["state_format"]
    fast.AdamW([p], compiled_optimizer=False).load_state_dict(old)
