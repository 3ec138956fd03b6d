"""Return estimators as pure functions on time-major tensors.

Every function takes tensors shaped [T, ...] (time first, any batch shape after it, e.g. [T, B]
for B parallel envs or [H, N] for N imagined trajectories of horizon H) and returns a tensor of
the same shape. Conventions, for step t:

  ``rewards[t]``      r_t, received after acting in s_t
  ``values[t]``       V(s_t)
  ``next_values[t]``  V(s_{t+1}); at an episode's last step this is the value of the *final*
                      observation (not of the reset one), so truncated episodes bootstrap correctly
  ``terminated[t]``   1 if s_{t+1} is terminal (no bootstrap from it), else 0; a float in [0, 1]
                      (e.g. a learned ``1 - continue`` probability) weights the bootstrap instead
  ``done[t]``         1 if the episode ended after step t (terminated *or* truncated): the
                      recursion does not carry later steps into it. Defaults to ``terminated``.

The last step of the segment always bootstraps from ``next_values[-1]`` (or, for
:func:`monte_carlo`, from ``last_value``). None of these functions builds an autograd graph
differently from plain arithmetic: call them under ``torch.no_grad()`` for targets, or with grads
for imagined returns that a model-based actor differentiates through.
"""

from __future__ import annotations

import torch


def td0(
    rewards: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor, gamma: float
) -> torch.Tensor:
    """One-step TD target: r_t + gamma (1 - terminated_t) V(s_{t+1}).

    Shapes: rewards, next_values, terminated [T, ...] -> [T, ...].
    """
    return rewards + gamma * (1.0 - terminated) * next_values


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
    lam: float,
    done: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generalised advantage estimates (Schulman et al. 2016).

    delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma lam (1 - done_t) A_{t+1},   A_T = 0

    Shapes: rewards, values, next_values, terminated, done [T, ...] -> advantages [T, ...].
    The lambda-returns (value targets) are ``gae(...) + values``.
    """
    done = terminated if done is None else done
    deltas = td0(rewards, next_values, terminated, gamma) - values
    carry = gamma * lam * (1.0 - done)
    adv = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        adv[t] = running
    return adv


def lambda_return(
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
    lam: float,
    done: torch.Tensor | None = None,
) -> torch.Tensor:
    """TD(lambda) returns, the recursive form Dreamer uses on imagined trajectories.

    G_t = r_t + gamma (1 - terminated_t) ((1 - lam) V(s_{t+1}) + lam G_{t+1}),
    where G_{t+1} is replaced by V(s_{t+1}) at the segment's last step and where ``done_t``.

    Shapes: rewards, next_values, terminated, done [T, ...] -> returns [T, ...].
    lam = 0 gives :func:`td0`; lam = 1 the bootstrapped Monte-Carlo return; for any lam this
    equals ``gae(rewards, values, next_values, ...) + values``.
    """
    done = terminated if done is None else done
    cont = gamma * (1.0 - terminated)
    out = torch.empty_like(rewards)
    following = next_values[-1]  # G_{t+1}; at the segment's end it is V(s_T)
    for t in range(rewards.shape[0] - 1, -1, -1):
        # (1 - lam) V' + lam G_{t+1}, with G_{t+1} -> V' where the episode ended
        mixed = next_values[t] + lam * (1.0 - done[t]) * (following - next_values[t])
        following = rewards[t] + cont[t] * mixed
        out[t] = following
    return out


def monte_carlo(
    rewards: torch.Tensor, done: torch.Tensor, gamma: float, last_value: torch.Tensor | None = None
) -> torch.Tensor:
    """Discounted reward-to-go within each episode, no bootstrapping inside the segment.

    G_t = r_t + gamma (1 - done_t) G_{t+1},   G_T = last_value (0 if None)

    Shapes: rewards, done [T, ...], last_value [...] -> returns [T, ...]. An episode cut by a
    time limit is treated as ending there (use :func:`lambda_return` with lam=1 to bootstrap it).
    """
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0]) if last_value is None else last_value
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * (1.0 - done[t]) * running
        out[t] = running
    return out


#: the names :func:`estimate` accepts (the ``return_estimator`` switch of model-based agents)
ESTIMATORS: tuple[str, ...] = ("lambda_return", "gae", "td0", "monte_carlo")


def estimate(
    name: str,
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    continues: torch.Tensor,
    gamma: float,
    lam: float,
    done: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Value targets and advantages by the estimator ``name``: (targets, advantages), [T, ...].

    ``continues[t]`` is the probability that s_{t+1} is not terminal (``1 - terminated``; a
    learned continue head's output on imagined trajectories); ``done[t]`` (optional, binary)
    marks real episode boundaries after step t, where the recursion stops but the bootstrap
    from ``next_values[t]`` stays (time limits). Every estimator bootstraps from
    ``next_values[-1]`` at the segment's end, and advantages are ``targets - values``:

      lambda_return  G_t = r_t + gamma c_t ((1 - lam) V(s_{t+1}) + lam G_{t+1})  (Dreamer's form)
      gae            the same estimate by the GAE recursion on the TD errors (equal up to rounding)
      td0            G_t = r_t + gamma c_t V(s_{t+1})                            (lam ignored)
      monte_carlo    G_t = r_t + gamma c_t G_{t+1}, G_T = V(s_T): lambda_return with lam = 1

    Shapes: rewards, values, next_values, continues, done [T, ...] -> two tensors [T, ...].
    Gradients flow as plain arithmetic (wrap in ``torch.no_grad()`` for targets).
    """
    terminated = 1.0 - continues
    if name == "lambda_return" or name == "monte_carlo":
        cut = torch.zeros_like(rewards) if done is None else done
        targets = lambda_return(
            rewards, next_values, terminated, gamma, 1.0 if name == "monte_carlo" else lam, cut
        )
        return targets, targets - values
    if name == "gae":
        # gae's recursion carries gamma lam (1 - done'); the lambda-return carries
        # gamma lam c (1 - done), so done' = 1 - c (1 - done) makes them the same estimator
        keep = continues if done is None else continues * (1.0 - done)
        adv = gae(rewards, values, next_values, terminated, gamma, lam, 1.0 - keep)
        return adv + values, adv
    if name == "td0":
        targets = td0(rewards, next_values, terminated, gamma)
        return targets, targets - values
    from initablate.registry import suggest

    raise ValueError(
        f"unknown return estimator '{name}'{suggest(name, list(ESTIMATORS))} "
        f"(known: {', '.join(ESTIMATORS)})"
    )
