"""Early-exploration diagnostics of an initial policy (pure functions on arrays).

What the notes' init paper measured: how an init scheme shapes the distribution of the first
actions. A good init covers the action range without piling mass up at the bounds.
Actions are given in the normalised box [-1, 1] (after tanh squashing or clipping).
"""

from __future__ import annotations

import numpy as np

N_BINS = 20


def action_histogram(actions: np.ndarray, bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray]:
    """actions [N, A] in [-1, 1] -> (edges [bins+1], mass [A, bins]) with rows summing to 1."""
    actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
    edges = np.linspace(-1.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, actions, side="right") - 1, 0, bins - 1)  # [N, A]
    mass = np.stack([np.bincount(idx[:, d], minlength=bins) for d in range(actions.shape[1])])
    return edges, mass / max(actions.shape[0], 1)


def coverage(mass: np.ndarray, min_mass: float = 0.01) -> np.ndarray:
    """mass [A, bins] -> [A]: fraction of equal bins holding at least ``min_mass`` of the mass."""
    return (np.asarray(mass) >= min_mass).mean(axis=-1)


def clip_fraction(actions: np.ndarray, tol: float = 0.01) -> np.ndarray:
    """actions [N, A] in [-1, 1] -> [A]: share within ``tol`` of the range (2) of a bound."""
    actions = np.asarray(actions, dtype=np.float64)
    return (np.abs(actions) >= 1.0 - 2.0 * tol).mean(axis=0)


def action_diagnostics(actions: np.ndarray, bins: int = N_BINS) -> dict:
    """Histogram, coverage and clip fraction per action dimension, as plain lists."""
    edges, mass = action_histogram(actions, bins)
    return {
        "edges": edges.tolist(),
        "hist": mass.tolist(),
        "coverage": coverage(mass).tolist(),
        "clip_frac": clip_fraction(actions).tolist(),
    }
