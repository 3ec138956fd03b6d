"""The GPU paths: ``device: cuda`` (or ``auto`` on a machine with CUDA).

Skipped where torch sees no GPU; on one, ``pytest tests/test_cuda.py``. They check what the CPU
suite cannot: every network and recurrent state of an agent that runs on a GPU really lives
there, its networks compute the same function there as on the CPU, and a trial's checkpoint and
policy move between a GPU machine and a CPU one (a campaign spread over machines resumes on
whichever it gets).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_pixels import TINY as PIXEL_TINY
from torch import nn

from agent import build_config
from agent.registry import agents
from agent.trial import run_trial

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

GPU_AGENTS = [name for name in agents.names() if "cuda" in agents.info(name).devices]

#: test_pixels' tiny pixel world model; evaluations every 40 steps (the resume test stops at 40)
TINY = {**PIXEL_TINY, "env": "InvertedPendulum-v5", "eval_every": 40}


def config(name: str, total: int, mode: str = "pixels", device: str = "cuda"):
    return build_config(
        {
            "agent": name,
            "total_steps": total,
            "observation.mode": mode,
            "device": device,
            **TINY,
            f"{name}.prefill": 20,
            **(
                {"world_model.train_every": 5}
                if name == "world_model"
                else {f"{name}.explore_steps": 20, f"{name}.model_updates": 2}
            ),
        }
    )


def modules(agent) -> dict[str, nn.Module]:
    """Every module attribute, as ``to_device`` moves them: target copies too, which
    ``agent.networks()`` (the init spec's view) leaves out."""
    return {k: v for k, v in vars(agent).items() if isinstance(v, nn.Module)}


def test_some_agents_run_on_the_gpu():
    assert {"world_model", "dreamer", "mb_ppo"} <= set(GPU_AGENTS), GPU_AGENTS


@pytest.mark.parametrize("mode", ["state", "pixels"])
@pytest.mark.parametrize("name", GPU_AGENTS)
def test_every_network_and_latent_lives_on_the_gpu(name, mode, tmp_path):
    cfg = config(name, 60, mode)
    rows = run_trial(cfg, tmp_path)
    last = rows[-1]
    assert last["env_step"] == 60
    losses = {k: v for k, v in last.items() if k.startswith(("loss/", "model/loss"))}
    assert losses and all(np.isfinite(v) for v in losses.values()), losses
    agent = agents.get(name)(cfg)
    agent.initialise()
    agent.train(40)
    nets = modules(agent)
    assert "model" in nets
    for net_name, net in nets.items():
        devices = {p.device.type for p in net.parameters()} | {b.device.type for b in net.buffers()}
        assert devices <= {"cuda"}, (net_name, devices)
    if getattr(agent, "latent", None) is not None:  # None just after an episode's end
        assert agent.latent.deter.device.type == "cuda"


def test_world_model_networks_compute_the_same_function_on_both_devices():
    cfg = config("world_model", 60, "pixels", device="cpu")
    agent = agents.get("world_model")(cfg)
    agent.initialise()
    agent.train(40)  # filled replay, a few updates: weights away from their init
    cpu = agent.model.eval()
    gpu = copy.deepcopy(cpu).to("cuda")
    frames = torch.as_tensor(agent.replay.obs[:32])
    with torch.no_grad():
        e_cpu, e_gpu = cpu.encoder(frames), gpu.encoder(frames.cuda())
        np.testing.assert_allclose(e_gpu.cpu().numpy(), e_cpu.numpy(), rtol=1e-3, atol=1e-4)
        feat = torch.randn(32, cpu.rssm.feat_dim)
        for head in ("decoder", "reward_head"):
            out_cpu, out_gpu = getattr(cpu, head)(feat), getattr(gpu, head)(feat.cuda())
            np.testing.assert_allclose(
                out_gpu.cpu().numpy(), out_cpu.numpy(), rtol=1e-3, atol=1e-4, err_msg=head
            )


def _on_cpu(code: str) -> subprocess.CompletedProcess:
    """Run python ``code`` in a process that sees no GPU (a CPU machine)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("name", ["dreamer", "mb_ppo"])
def test_checkpoints_and_policies_move_between_gpu_and_cpu_machines(name, tmp_path):
    """device: auto, as in a sweep: started on the GPU, resumed on a CPU-only process, then
    resumed back on the GPU; the final policy loads and acts on both."""
    raw = config(name, 40, "pixels", device="auto").to_dict()
    run_trial(build_config(raw), tmp_path)  # 0 -> 40 on the GPU
    raw80 = json.dumps({**raw, "total_steps": 80})
    code = (
        "import json, torch\n"
        "from agent import build_config\n"
        "from agent.trial import run_trial\n"
        "assert not torch.cuda.is_available()\n"
        f"rows = run_trial(build_config(json.loads({raw80!r})), {str(tmp_path)!r})\n"
        "print(rows[-1]['env_step'])\n"
        "from agent.policy import load_policy\n"
        f"print(float(load_policy({str(tmp_path)!r}).evaluate(1)[0]))\n"
    )
    done = _on_cpu(code)
    assert done.returncode == 0, done.stderr[-3000:]
    steps, ret = done.stdout.split()[-2:]
    assert int(steps) == 80 and np.isfinite(float(ret))
    rows = run_trial(build_config({**raw, "total_steps": 120}), tmp_path)  # back on the GPU
    assert [r["env_step"] for r in rows][-3:] == [40, 80, 120]
    assert np.isfinite(rows[-1]["eval/return"])
    from agent.policy import load_policy

    policy = load_policy(tmp_path)
    assert next(policy.agent.model.parameters()).device.type == "cuda"
    assert np.isfinite(policy.evaluate(1)[0])
