"""Shared fixtures: devices (CUDA only where present, so CPU-only CI skips it cleanly)."""

import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param
