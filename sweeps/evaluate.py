"""``sweep eval TRIAL_DIR``: replay a trial's final policy, print its returns, film an episode."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def cmd_eval(args: argparse.Namespace) -> int:
    from agent.policy import PolicyError, load_policy
    from sweeps.cli import CLIError

    if args.episodes < 1:
        raise CLIError(f"--episodes must be at least 1, got {args.episodes}")
    video = Path(args.video) if args.video else None
    if video is not None and video.suffix.lower() not in (".mp4", ".gif"):
        raise CLIError(f"--video {video}: the file name must end in .mp4 or .gif")
    try:
        policy = load_policy(args.trial)
        frames: list[np.ndarray] | None = [] if video is not None else None
        returns = policy.evaluate(
            args.episodes, seed=args.seed, deterministic=not args.stochastic, frames=frames
        )
    except PolicyError as err:
        raise CLIError(str(err)) from err
    kind = "stochastic" if args.stochastic else "deterministic"
    print(
        f"{policy.info['agent']} on {policy.info['env']} after {policy.env_steps:,} env steps, "
        f"{args.episodes} {kind} episodes (seeds {args.seed}..{args.seed + args.episodes - 1}): "
        f"return {returns.mean():.1f} +- {returns.std():.1f}"
    )
    if video is not None and frames:
        write_video(video, frames, fps=policy.env_spec.make().metadata.get("render_fps", 30))
        print(f"wrote {video} ({len(frames)} frames, the first episode: return {returns[0]:.1f})")
    return 0


def write_video(path: Path, frames: list[np.ndarray], fps: int = 30) -> None:
    """Frames [H, W, 3] uint8 -> an MP4 (imageio-ffmpeg) or a GIF."""
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(path, frames, fps=fps, macro_block_size=1)
