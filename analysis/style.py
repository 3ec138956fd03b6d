"""One look per factor level, and words for keys and metrics, shared by every figure.

A factor level (``init.scheme = orthogonal``, ``agent = sac``) gets one :class:`LevelStyle`
(colour, line style, marker) wherever it is drawn: in every figure of a report, in every report
and in figures made through the Python API. Levels of the factors the framework registers
(init schemes, scenarios, agents, return estimators, activations) have fixed slots in
:data:`KNOWN_LEVELS`, so orthogonal is the same orange in a sweep over three schemes and in one
over two. Other levels (numeric gains, a user's own scheme) take the next free slots in sorted
order of the levels passed in: the report passes every level of the factor in the sweep, so
all its figures agree; an API call gets the same styles when given the same levels.

Slot ``i`` has colour ``COLORS[i % 8]`` (colour-blind-safe, no two near-duplicate hues) and
line style / marker ``i // 8``: above 8 levels, levels that share a hue differ in line style
and marker. Figures draw markers whenever more than 8 levels share a panel.

Words: :func:`factor_name` (``init.scenario`` -> "scenario"), :func:`facet_title`
("scenario: no_small"), :func:`metric_label` ("evaluation return", with units where they
exist). Nothing here imports torch or reads files.
"""

from __future__ import annotations

import itertools
import math
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import seaborn as sns

__all__ = [
    "COLORS",
    "KNOWN_LEVELS",
    "STEP_LABEL",
    "LevelStyle",
    "facet_title",
    "factor_name",
    "level_slots",
    "level_styles",
    "level_text",
    "metric_label",
    "palette",
    "secondary_styles",
    "sort_levels",
    "wrap_label",
]

_CB = sns.color_palette("colorblind", 10)
COLORS: list[tuple[float, float, float]] = [_CB[i] for i in (0, 1, 2, 4, 5, 9, 3, 7)]
"""Eight colour-blind-safe hues (seaborn's colorblind palette without its pink and yellow,
which are too light on white); vermilion comes late, as it is close to the orange."""
LINESTYLES: list[Any] = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
MAX_PLAIN = len(COLORS)
"""Above this many levels in one panel, figures draw markers as well as hue."""
STEP_LABEL = "environment steps"

KNOWN_LEVELS: dict[str, list[str]] = {
    "init.scheme": [
        "fanin",
        "orthogonal",
        "kaiming",
        "pytorch_default",
        "xavier",
        "small_uniform",
        "kaiming_uniform",
        "kaiming_normal",
        "xavier_normal",
        "zeros",
    ],
    "init.scenario": [
        "no_small",
        "small_outputs",
        "small_std",
        "small_mean_critic",
        "small_critic_std",
    ],
    "agent": ["sac", "ppo", "mb_ppo", "mb_sac", "dreamer", "td3", "world_model"],
    "return_estimator": ["lambda_return", "gae", "td0", "monte_carlo", "n_step"],
    "activation": ["elu", "relu", "silu", "tanh", "gelu", "leaky_relu"],
}
"""Factor -> its registered levels in slot order. A key matches its own entry, else the entry
of its last dotted part (``mb_ppo.return_estimator`` -> ``return_estimator``)."""

_FACTOR_WORDS = {
    "init.scheme": "init scheme",
    "init.scenario": "scenario",
    "env": "env",
    "group": "group",
    "seed": "seed",
}


class LevelStyle(NamedTuple):
    """How one factor level is drawn: ``color`` (RGB), ``linestyle``, ``marker``."""

    color: tuple[float, float, float]
    linestyle: Any
    marker: str


def _known(factor: str | None) -> list[str]:
    if factor is None:
        return []
    if factor in KNOWN_LEVELS:
        return KNOWN_LEVELS[factor]
    return KNOWN_LEVELS.get(factor.rsplit(".", 1)[-1], [])


def sort_levels(levels: Iterable[Any]) -> list[Any]:
    """Distinct levels, numbers in numeric order first, then everything else by its text."""
    unique = list(dict.fromkeys(v for v in levels if not _missing(v)))

    def key(v: Any) -> tuple[int, float, str]:
        number = _as_number(v)
        return (0, number, "") if number is not None else (1, 0.0, str(v))

    return sorted(unique, key=key)


def _slot_style(slot: int) -> LevelStyle:
    return LevelStyle(
        COLORS[slot % len(COLORS)],
        LINESTYLES[(slot // len(COLORS)) % len(LINESTYLES)],
        MARKERS[(slot // len(COLORS) + slot) % len(MARKERS)],
    )


def level_slots(factor: str | None, levels: Iterable[Any]) -> dict[Any, int]:
    """Level -> slot number (the index behind its colour, line style and marker).

    Registered levels (:data:`KNOWN_LEVELS`) keep their slot whatever else is present; the
    others fill the free slots in :func:`sort_levels` order. Missing values (None/NaN) are
    skipped.
    """
    levels = sort_levels(levels)
    known = _known(factor)
    slots: dict[Any, int] = {v: known.index(str(v)) for v in levels if str(v) in known}
    used = set(slots.values())
    free = (i for i in itertools.count() if i not in used)
    for v in levels:
        if v not in slots:
            slots[v] = next(free)
    return {v: slots[v] for v in levels}


def level_styles(factor: str | None, levels: Iterable[Any]) -> dict[Any, LevelStyle]:
    """Level -> :class:`LevelStyle` (colour, line style, marker) for the levels of ``factor``,
    from the slots of :func:`level_slots`."""
    return {v: _slot_style(i) for v, i in level_slots(factor, levels).items()}


def secondary_styles(factor: str | None, levels: Iterable[Any]) -> dict[Any, tuple[Any, str]]:
    """Level -> (line style, marker) for a factor drawn by line style or marker, not colour
    (e.g. the scenario when colour shows the init scheme); stable slots as for colours."""
    return {
        v: (LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)])
        for v, i in level_slots(factor, levels).items()
    }


def palette(factor: str | None, levels: Iterable[Any]) -> dict[Any, tuple[float, float, float]]:
    """Level -> colour, the colours of :func:`level_styles`."""
    return {v: s.color for v, s in level_styles(factor, levels).items()}


def factor_name(key: str | None) -> str:
    """A config key in words: ``init.scenario`` -> "scenario", ``init.gains.q`` -> "q gain",
    ``world_model.activation`` -> "world model activation"."""
    if key is None:
        return ""
    if key in _FACTOR_WORDS:
        return _FACTOR_WORDS[key]
    parts = key.split(".")
    if len(parts) == 3 and parts[:2] == ["init", "gains"]:
        return f"{parts[2].replace('_', ' ')} gain"
    if parts[0] == "init":
        parts = parts[1:]
    return " ".join(p.replace("_", " ") for p in parts)


def facet_title(where: Mapping[str | None, Any], sep: str = "; ") -> str:
    """Panel title in words: ``{"init.scenario": "no_small"}`` -> "scenario: no_small"; a
    ``group`` value (already a label such as "orthogonal / no_small") stands alone."""
    return sep.join(
        level_text(v) if k == "group" else f"{factor_name(k)}: {level_text(v)}"
        for k, v in where.items()
        if k is not None and v is not None
    )


_OPEN_LOOP = re.compile(r"^model/(open_loop|const)/(\w+?)_?h?(\d+)?$")
_QUANTITY = {"obs": "observation", "reward": "reward", "proprio": "proprio target"}


def metric_label(metric: str) -> str:
    """A metric key in words with its unit: ``eval/return`` -> "evaluation return",
    ``model/open_loop/obs_h15`` -> "15-step open-loop observation error (MSE per dim)"."""
    words = {
        "eval/return": "evaluation return",
        "train/return": "training return",
        "perf/env_steps_per_s": "throughput (env steps/s)",
        "init/action_clip_frac": "clip fraction at init",
    }
    if metric in words:
        return words[metric]
    match = _OPEN_LOOP.match(metric)
    if match:
        kind, quantity, horizon = match.groups()
        what = _QUANTITY.get(quantity, quantity.replace("_", " "))
        if kind == "open_loop" and horizon:
            return f"{horizon}-step open-loop {what} error (MSE per dim)"
        return f"{what} error of a constant predictor (MSE per dim)"
    return metric


def level_text(value: Any) -> str:
    """A level as text: whole numbers without a trailing .0 (``1.0`` -> "1")."""
    number = _as_number(value)
    if number is not None and not isinstance(value, bool) and float(number).is_integer():
        return str(int(number)) if abs(number) < 1e15 else str(value)
    return str(value)


def wrap_label(text: str, width: int = 34, max_lines: int = 3) -> str:
    """Break an axis label into lines of at most ``width`` characters (a panel is narrow)."""
    lines = textwrap.wrap(text, width) or [""]
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], " ".join(lines[max_lines - 1 :])]
    return "\n".join(lines)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN
    except (TypeError, ValueError):
        return False


def levels_of(values: Sequence[Any]) -> list[Any]:
    """The distinct non-missing values of a column, in :func:`sort_levels` order."""
    return sort_levels(values)
