"""Recurrent state-space model (Hafner et al. 2019, Dreamer's RSSM), built from role-tagged layers.

The latent state is a deterministic GRU state ``h`` and a stochastic latent ``z``:

    prior      h_t = GRU(h_{t-1}, MLP([z_{t-1}, a_{t-1}])),   z_t ~ p(z_t | h_t)
    posterior                                                  z_t ~ q(z_t | h_t, e_t)

with ``e_t`` the encoder's embedding of the observation. ``z`` is a diagonal Gaussian
(mean, softplus std + min_std) or, with ``discrete=C``, ``stoch`` categoricals of ``C`` classes
each (one-hot samples with straight-through gradients, ``unimix`` uniform mixing as DreamerV3).

Every layer carries role ``dynamics`` (the posterior's layers too: they are part of the RSSM);
init is applied afterwards by ``init_schemes.apply_init``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agent.common.networks import RoleLinear, activations
from init_schemes import check_role


@dataclass
class Latent:
    """A batch of RSSM states with any leading shape ``[*L]``.

    deter [*L, deter]; stoch [*L, stoch_dim] (a sample, one-hot and flattened if discrete);
    stats [*L, stats_dim]: the distribution ``stoch`` was drawn from (Gaussian: mean and std
    concatenated; discrete: log-probabilities, flattened).
    """

    deter: Tensor
    stoch: Tensor
    stats: Tensor

    def map(self, fn: Callable[[Tensor], Tensor]) -> Latent:
        return Latent(fn(self.deter), fn(self.stoch), fn(self.stats))

    def detach(self) -> Latent:
        return self.map(Tensor.detach)

    def flatten(self) -> Latent:
        """Merge all leading dims: [B, T, ...] -> [B*T, ...] (e.g. posteriors -> start states)."""
        return self.map(lambda t: t.reshape(-1, t.shape[-1]))

    def __getitem__(self, idx) -> Latent:
        return self.map(lambda t: t[idx])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.deter.shape[:-1])

    @staticmethod
    def stack(states: list[Latent], dim: int = 1) -> Latent:
        return Latent(
            *(
                torch.stack([getattr(s, k) for s in states], dim)
                for k in ("deter", "stoch", "stats")
            )
        )


class RoleGRUCell(nn.GRUCell):
    """torch's fused GRU cell with a role (its gates are sigmoid/tanh: default gain 1)."""

    def __init__(
        self, input_size: int, hidden_size: int, role: str = "dynamics", activation: str = "sigmoid"
    ):
        check_role(role)
        super().__init__(input_size, hidden_size)
        self.role = role
        self.activation = activation


# --- distributions (pure functions on stats tensors) ---------------------------------------------


def kl_gaussian(p: Tensor, q: Tensor) -> Tensor:
    """KL(p || q) of diagonal Gaussians given as [..., 2S] (mean, std), summed over S -> [...]."""
    mp, sp = p.chunk(2, -1)
    mq, sq = q.chunk(2, -1)
    kl = torch.log(sq / sp) + (sp.pow(2) + (mp - mq).pow(2)) / (2 * sq.pow(2)) - 0.5
    return kl.sum(-1)


def kl_categorical(p: Tensor, q: Tensor, classes: int) -> Tensor:
    """KL(p || q) of independent categoricals given as log-probs [..., S*C], summed -> [...]."""
    lp = p.unflatten(-1, (-1, classes))
    lq = q.unflatten(-1, (-1, classes))
    return (lp.exp() * (lp - lq)).sum((-2, -1))


def entropy_gaussian(p: Tensor) -> Tensor:
    """Differential entropy of diagonal Gaussians [..., 2S] -> [...]."""
    _, std = p.chunk(2, -1)
    return (0.5 * math.log(2 * math.pi * math.e) + torch.log(std)).sum(-1)


def entropy_categorical(p: Tensor, classes: int) -> Tensor:
    lp = p.unflatten(-1, (-1, classes))
    return -(lp.exp() * lp).sum((-2, -1))


class RSSM(nn.Module):
    """The recurrent state-space model. Shapes: B batch, T time, E embedding, A action."""

    def __init__(
        self,
        embed_dim: int,
        act_dim: int,
        deter: int = 200,
        stoch: int = 30,
        discrete: int = 0,
        hidden: int = 200,
        activation: str = "elu",
        min_std: float = 0.1,
        unimix: float = 0.01,
    ):
        super().__init__()
        self.deter_dim, self.stoch_size, self.classes = deter, stoch, discrete
        self.min_std, self.unimix = min_std, unimix
        self.stoch_dim = stoch * discrete if discrete else stoch
        stats_dim = stoch * discrete if discrete else 2 * stoch
        self.act = activations.get(activation)()
        self.img_in = RoleLinear(self.stoch_dim + act_dim, hidden, "dynamics", activation)
        self.gru = RoleGRUCell(hidden, deter)
        self.img_out = RoleLinear(deter, hidden, "dynamics", activation)
        self.prior_stats = RoleLinear(hidden, stats_dim, "dynamics", "linear")
        self.obs_out = RoleLinear(deter + embed_dim, hidden, "dynamics", activation)
        self.post_stats = RoleLinear(hidden, stats_dim, "dynamics", "linear")

    @property
    def feat_dim(self) -> int:
        return self.deter_dim + self.stoch_dim

    # --- distributions -------------------------------------------------------------------------
    def _stats(self, raw: Tensor) -> Tensor:
        if self.classes:
            logp = raw.unflatten(-1, (-1, self.classes)).log_softmax(-1)
            if self.unimix:
                probs = (1 - self.unimix) * logp.exp() + self.unimix / self.classes
                logp = probs.log()
            return logp.flatten(-2)
        mean, std = raw.chunk(2, -1)
        return torch.cat([mean, F.softplus(std) + self.min_std], -1)

    def _draw(self, stats: Tensor, sample: bool) -> Tensor:
        """A sample (reparameterised / straight-through) or the mode of ``stats``."""
        if self.classes:
            logp = stats.unflatten(-1, (-1, self.classes))
            if sample:
                gumbel = -torch.log(-torch.log(torch.rand_like(logp).clamp_min(1e-20)))
                index = (logp + gumbel).argmax(-1)
            else:
                index = logp.argmax(-1)
            probs = logp.exp()
            onehot = F.one_hot(index, self.classes).to(probs.dtype)
            return (onehot + probs - probs.detach()).flatten(-2)
        mean, std = stats.chunk(2, -1)
        return mean + std * torch.randn_like(std) if sample else mean

    def kl(self, p: Tensor, q: Tensor) -> Tensor:
        return kl_categorical(p, q, self.classes) if self.classes else kl_gaussian(p, q)

    def entropy(self, p: Tensor) -> Tensor:
        return entropy_categorical(p, self.classes) if self.classes else entropy_gaussian(p)

    # --- steps ---------------------------------------------------------------------------------
    def initial(self, batch: int) -> Latent:
        """The all-zero state episodes start from, [batch]."""
        w = self.img_in.weight
        deter = w.new_zeros(batch, self.deter_dim)
        stoch = w.new_zeros(batch, self.stoch_dim)
        if self.classes:
            stats = w.new_full((batch, self.stoch_dim), -math.log(self.classes))
        else:
            stats = torch.cat([stoch, torch.ones_like(stoch)], -1)
        return Latent(deter, stoch, stats)

    def prior_from_deter(self, deter: Tensor, sample: bool = True) -> Latent:
        """p(z | h) for any leading shape."""
        stats = self._stats(self.prior_stats(self.act(self.img_out(deter))))
        return Latent(deter, self._draw(stats, sample), stats)

    def img_step(self, state: Latent, action: Tensor, sample: bool = True) -> Latent:
        """One step of the prior: state [N], action [N, A] -> next state [N]."""
        x = self.act(self.img_in(torch.cat([state.stoch, action], -1)))
        deter = self.gru(x, state.deter)
        return self.prior_from_deter(deter, sample)

    def observe(
        self,
        embed: Tensor,
        action: Tensor,
        is_first: Tensor,
        state: Latent | None = None,
        sample: bool = True,
    ) -> tuple[Latent, Latent]:
        """Posteriors and priors along real sequences.

        embed [B, T, E]; action [B, T, A] is the action that led to step t; is_first [B, T]
        (bool) resets the state (and zeroes the action) before step t. ``state`` [B] is the
        state before step 0 (zeros if None). Returns (posts, priors), each Latent [B, T].
        """
        B, T = is_first.shape
        state = self.initial(B) if state is None else state
        keep = (~is_first).to(embed.dtype).unsqueeze(-1)  # [B, T, 1]
        S, D = self.stoch_dim, self.deter_dim
        # the input layers' action and embedding parts do not depend on the recurrence:
        # compute them for all steps at once and only add the recurrent part inside the loop
        w_in, w_obs = self.img_in.weight, self.obs_out.weight
        act_part = F.linear(action * keep, w_in[:, S:], self.img_in.bias)  # [B, T, H]
        emb_part = F.linear(embed, w_obs[:, D:], self.obs_out.bias)  # [B, T, H]
        w_in_z, w_obs_h = w_in[:, :S], w_obs[:, :D]
        # unbind once: indexing [:, t] in the loop would make backward allocate a [B, T, H]
        # gradient per step
        acts, embs, keeps = act_part.unbind(1), emb_part.unbind(1), keep.unbind(1)
        deter, stoch = state.deter, state.stoch
        deters, stochs, stats = [], [], []
        for t in range(T):
            k = keeps[t]
            x = self.act(F.linear(stoch * k, w_in_z) + acts[t])
            deter = self.gru(x, deter * k)
            s = self._stats(self.post_stats(self.act(F.linear(deter, w_obs_h) + embs[t])))
            stoch = self._draw(s, sample)
            deters.append(deter)
            stochs.append(stoch)
            stats.append(s)
        posts = Latent(torch.stack(deters, 1), torch.stack(stochs, 1), torch.stack(stats, 1))
        priors = self.prior_from_deter(posts.deter, sample)
        return posts, priors

    def imagine(
        self,
        start: Latent,
        policy: Callable[[Latent], Tensor] | Tensor,
        horizon: int | None = None,
        sample: bool = True,
    ) -> tuple[Latent, Tensor]:
        """Roll the prior forward from ``start`` [N].

        ``policy`` maps a Latent [N] to actions [N, A], or is a fixed action tensor [N, H, A].
        Returns (states [N, H+1] including the start, actions [N, H, A]); gradients flow through
        both unless the caller detaches.
        """
        if isinstance(policy, Tensor):
            horizon = policy.shape[1]
        if horizon is None:
            raise ValueError("imagine needs a horizon when the policy is a function")
        states, actions = [start], []
        state = start
        for t in range(horizon):
            a = policy[:, t] if isinstance(policy, Tensor) else policy(state)
            state = self.img_step(state, a, sample)
            states.append(state)
            actions.append(a)
        return Latent.stack(states, 1), torch.stack(actions, 1)
