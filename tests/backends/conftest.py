"""One torch thread for the backend tests: small tensors, and the CPU is shared (OpenMP spinning under
load made single VolSDF tests 10x slower)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
