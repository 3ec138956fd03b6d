"""Our PPO against Stable-Baselines3's PPO, same hyper-parameters, one after the other in one run.

    nice python bench/ppo_vs_sb3.py                   # 100k steps on Pendulum-v1, seed 0
    nice python bench/ppo_vs_sb3.py --steps 200000 --seeds 0 1
    nice python bench/ppo_vs_sb3.py --steps 200000 --seeds 0 1 2 --set init.scheme=orthogonal
    nice python bench/ppo_vs_sb3.py --env Walker2d-v5 --steps 200000 --seeds 0 1 2 \
        --set init.scheme=orthogonal

Prints, per library: env steps per second of CPU time (``time.process_time``; on a shared
machine wall-clock rates mostly measure the neighbours, so wall-clock rates are shown too)
over the whole training run (rollouts and updates), the
milliseconds of one rollout's update phase alone (``epochs`` passes of minibatch steps), and the
final deterministic eval return on the same seeded eval envs (``agent.common.evaluation``).
Then the ratios (ours / SB3; the target is >= 1x throughput at an equal or better return).

Settings shared by both: our PPO preset for the env (``agent/presets/ppo.yaml``, rl-zoo3's tuned
hyper-parameters). Pendulum-v1 (rl-zoo3's Pendulum PPO without gSDE): 4 envs, 1024 steps per env
per rollout, minibatch 64, 10 epochs, lr 1e-3, gamma 0.9, GAE lambda 0.95, clip 0.2, no entropy
bonus. Walker2d-v5 (rl-zoo3's MuJoCo Walker2d PPO): 1 env, 512 steps per rollout, minibatch 32,
20 epochs, lr 5.05e-5, gamma 0.99, GAE lambda 0.95, clip 0.1, ent_coef 5.85e-4, vf_coef 0.87, max
grad norm 1. Both: [64, 64] tanh nets with a state-independent log-std starting at 0, observation
and reward normalisation (SB3: VecNormalize).
Inits differ: SB3 uses orthogonal init (gain sqrt 2 hidden, 0.01 policy mean, 1 value), ours
the trial's init spec (default fanin + small outputs; ``--set init.scheme=orthogonal`` for
orthogonal hidden layers with small outputs, the closest to SB3's).
"""

from __future__ import annotations

import functools

import numpy as np
import peer
import torch

from agent.ppo import PPOConfig
from agent.presets import lookup


class SB3Policy(peer.SB3Policy):
    """Adapter so ``evaluate`` runs an SB3 PPO: normalised obs in, mean action in [-1, 1] out."""

    def __init__(self, model, vec_normalize, env_spec):
        super().__init__(model, env_spec)
        self.norm = vec_normalize
        space = model.action_space
        self.low, self.high = space.low, space.high

    @torch.inference_mode()
    def act(self, obs, state):
        o = torch.as_tensor(self.norm.normalize_obs(obs), dtype=torch.float32)
        a = np.clip(self.model.policy._predict(o, deterministic=True).numpy(), self.low, self.high)
        return 2.0 * (a - self.low) / (self.high - self.low) - 1.0, state


def ours(args, seed: int, extra: dict):
    agent, rates = peer.train_ours(
        "ppo", args.env, seed, args.steps, {**settings(args.env), **extra}
    )

    def update():  # the update phase alone, on the last full rollout
        agent.update()

    return agent, rates, update


def sb3(args, seed: int, env_spec):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    c = {
        **PPOConfig().model_dump(),
        **{k.removeprefix("ppo."): v for k, v in settings(args.env).items()},
    }
    venv = VecNormalize(
        make_vec_env(args.env, n_envs=c["num_envs"], seed=seed),
        norm_obs=c["normalize_obs"],
        norm_reward=c["normalize_reward"],
        gamma=c["gamma"],
    )
    model = PPO(
        "MlpPolicy",
        venv,
        learning_rate=c["lr"],
        n_steps=c["n_steps"],
        batch_size=c["minibatch_size"],
        n_epochs=c["epochs"],
        gamma=c["gamma"],
        gae_lambda=c["gae_lambda"],
        clip_range=c["clip"],
        ent_coef=c["ent_coef"],
        vf_coef=c["vf_coef"],
        max_grad_norm=c["max_grad_norm"],
        use_sde=False,
        policy_kwargs={
            "net_arch": {"pi": [64, 64], "vf": [64, 64]},
            "activation_fn": torch.nn.Tanh,
            "log_std_init": 0.0,
        },
        seed=seed,
        device="cpu",
        verbose=0,
    )
    rates = peer.timed(lambda: model.learn(args.steps), args.steps)
    venv.training = False
    return SB3Policy(model, venv, env_spec), rates, model.train


def settings(env: str) -> dict:
    """Our PPO preset for ``env`` (the settings both libraries get)."""
    found = lookup("ppo", env)
    if not found:
        raise SystemExit(f"no PPO preset for {env} in agent/presets/ppo.yaml")
    return found


def main() -> None:
    set_help = "extra overrides for our PPO, e.g. init.scheme=orthogonal"
    args, extra = peer.parse_args(__doc__, steps=100_000, set_help=set_help)
    print(
        f"PPO on {args.env}, {args.steps} env steps, settings {settings(args.env)}, extra {extra}",
        flush=True,
    )
    for seed in args.seeds:
        _, our, their = peer.train_both(
            seed,
            args.eval_episodes,
            functools.partial(ours, args, seed, extra),
            functools.partial(sb3, args, seed),
        )
        # one rollout's update phase per call, median of 3 interleaved
        ms = peer.update_ms({"ours": our.update, "sb3": their.update}, reps=3, n=1)
        peer.report_updates(seed, ms, "one update phase", digits=0)
        peer.report_ratio(seed, our, their)


if __name__ == "__main__":
    main()
