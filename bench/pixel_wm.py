"""Pixel world-model cost: rendering frames/s, world-model training frames/s, and their shares.

    python bench/pixel_wm.py                       # Walker2d-v5, 64x64 and 32x32, depth 16
    python bench/pixel_wm.py --env InvertedPendulum-v5 --sizes 32 --depths 8 16 --channels-last

For each (size, depth) it prints:
  render fps      env steps + frames per second with the fast settings (no multisampling,
                  shadows, reflections, skybox), and with MuJoCo's defaults for comparison
  update s        one world-model update on batch x seq_len frames (forward, backward, Adam)
  train frames/s  frames a model update consumes per second (batch x seq_len / update s)
  render / update share of the time of one env step under the schedule ``--train-every``
                  (one update per that many env steps; the sweep's world-model schedule)
Numbers are this machine's, with ``--threads`` torch threads; the peer is measured in the same
run (defaults vs fast rendering; channels_last vs contiguous when asked).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from agent.common.envs import ObservationConfig, PixelObservation, get_env
from agent.world_model import WorldModel, WorldModelConfig, model_update
from init_schemes import apply_init


def render_fps(env_id: str, size: int, steps: int, fast: bool) -> float:
    """Env steps with a rendered frame per second (uniform random actions)."""
    env = get_env(env_id).with_observation(ObservationConfig(mode="pixels", size=size)).make()
    if not fast:  # MuJoCo's defaults: multisampling, shadows, reflections, skybox
        import mujoco

        wrapper = env
        while not isinstance(wrapper, PixelObservation):
            wrapper = wrapper.env
        wrapper.env.unwrapped.model.vis.quality.offsamples = 4
        wrapper.renderer.close()
        wrapper.renderer = mujoco.Renderer(wrapper.env.unwrapped.model, size, size)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(
            rng.uniform(-1, 1, env.action_space.shape) * env.action_space.high
        )
        if term or trunc:
            env.reset()
    fps = steps / (time.perf_counter() - t0)
    env.close()
    return fps


def update_seconds(
    size: int, depth: int, act_dim: int, batch: int, seq_len: int, channels_last: bool, repeats: int
) -> float:
    """Mean seconds of one world-model update on random uint8 frames."""
    cfg = WorldModelConfig(
        depth=depth, batch_size=batch, seq_len=seq_len, channels_last=channels_last
    )
    model = WorldModel((3, size, size), act_dim, cfg, {"joint_pos": 9})
    apply_init(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps, foreach=True)
    g = torch.Generator().manual_seed(0)
    is_first = torch.zeros(batch, seq_len, dtype=torch.bool)
    is_first[:, 0] = True
    b = {
        "obs": torch.randint(
            0, 256, (batch, seq_len, 3, size, size), generator=g, dtype=torch.uint8
        ),
        "action": torch.rand(batch, seq_len, act_dim, generator=g) * 2 - 1,
        "reward": torch.rand(batch, seq_len, generator=g),
        "is_first": is_first,
        "is_terminal": torch.zeros(batch, seq_len, dtype=torch.bool),
        "proprio": {"joint_pos": torch.randn(batch, seq_len, 9, generator=g)},
    }
    model_update(model, opt, b, cfg.grad_clip)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        model_update(model, opt, b, cfg.grad_clip)
    return (time.perf_counter() - t0) / repeats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Walker2d-v5")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 32])
    p.add_argument("--depths", type=int, nargs="+", default=[16])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--train-every", type=int, default=5, help="env steps per model update")
    p.add_argument("--render-steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=2, help="timed updates per setting")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--channels-last", action="store_true", help="also time NHWC activations")
    p.add_argument(
        "--skip-default-render",
        action="store_true",
        help="do not time MuJoCo's default (slow) render settings",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    act_dim = get_env(args.env).make().action_space.shape[0]
    frames = args.batch * args.seq_len
    print(
        f"{args.env}, {args.threads} thread(s), batch {args.batch} x seq {args.seq_len} = "
        f"{frames} frames per update, one update per {args.train_every} env steps"
    )
    for size in args.sizes:
        fast = render_fps(args.env, size, args.render_steps, fast=True)
        line = f"{size}x{size}: render {fast:.0f} steps/s (fast settings)"
        if not args.skip_default_render:
            slow = render_fps(args.env, size, max(20, args.render_steps // 10), fast=False)
            line += f", {slow:.0f} steps/s with MuJoCo's defaults ({fast / slow:.1f}x)"
        print(line)
        for depth in args.depths:
            for cl in [False, True] if args.channels_last else [False]:
                sec = update_seconds(
                    size, depth, act_dim, args.batch, args.seq_len, cl, args.repeats
                )
                step_render = 1.0 / fast
                step_update = sec / args.train_every
                share = step_render / (step_render + step_update)
                print(
                    f"  depth {depth:3d}{' channels_last' if cl else ''}: update "
                    f"{sec:.2f} s, {frames / sec:.0f} train frames/s; per env step "
                    f"{1e3 * (step_render + step_update):.1f} ms = render {100 * share:.0f}% "
                    f"+ update {100 * (1 - share):.0f}% -> {1 / (step_render + step_update):.1f}"
                    " env steps/s"
                )


if __name__ == "__main__":
    main()
