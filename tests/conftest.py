import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
if not os.environ.get("DISPLAY"):  # before any test module imports mujoco (pixel tests)
    os.environ.setdefault("MUJOCO_GL", "egl")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
