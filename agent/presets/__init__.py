"""Tuned settings per agent and environment, as data (like rl-zoo3's hyper-parameter files).

``agent/presets/<agent>.yaml`` maps an environment name to dotted trial-config keys::

    Walker2d-v5:
      ppo.lr: 5.05041e-5
      ppo.n_steps: 512

:func:`agent.config.build_config` applies the entry for the trial's agent and env *under* the keys
the user set, so explicit keys always win. The trial config's ``preset`` key chooses: ``auto``
(the default: the entry named after the env, if any), ``none`` (no preset), or an entry name of
the agent's file (e.g. ``preset: Walker2d-v5`` on another MuJoCo env). The resolved config
records the entry used (``preset: Walker2d-v5``); a config resolved without a preset has no
``preset`` key, so configs from before presets existed resolve to the same dict.

Torch-free: reading a preset imports only ruamel.yaml.
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib import resources
from typing import Any

AUTO, NONE = "auto", "none"


class PresetError(ValueError):
    """A preset file that cannot be read, or a preset name that does not exist."""


@cache
def table(agent: str) -> dict[str, dict[str, Any]]:
    """All entries of ``agent``'s preset file (env or entry name -> dotted keys); {} if none."""
    path = resources.files(__name__).joinpath(f"{agent}.yaml")
    if not path.is_file():
        return {}
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    where = f"agent/presets/{agent}.yaml"
    try:
        doc = YAML(typ="safe", pure=True).load(path.read_text())
    except YAMLError as err:
        raise PresetError(f"{where}: not valid YAML: {err}") from err
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise PresetError(f"{where}: must map env names to settings, got {type(doc).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in doc.items():
        if not isinstance(entry, dict) or not entry:
            raise PresetError(
                f"{where}: {name}: must be a non-empty mapping of dotted config "
                f"keys to values, got {entry!r}"
            )
        for key in entry:
            if key in ("agent", "env", "seed", "seeds", "preset"):
                raise PresetError(f"{where}: {name}: a preset cannot set '{key}'")
        out[str(name)] = dict(entry)
    return out


def names(agent: str) -> list[str]:
    """The entry names of ``agent``'s preset file."""
    return list(table(agent))


def resolve(agent: str, env: str, preset: str = AUTO) -> tuple[str, dict[str, Any]]:
    """(entry name or 'none', its dotted keys) for a trial of ``agent`` on ``env``.

    ``preset``: ``auto`` takes the entry named ``env`` (none if the file has no such entry),
    ``none`` turns presets off, any other value must be an entry of ``agent``'s file.
    """
    if preset == NONE:
        return NONE, {}
    entries = table(agent)
    if preset == AUTO:
        return (env, dict(entries[env])) if env in entries else (NONE, {})
    if preset in entries:
        return preset, dict(entries[preset])
    known = ", ".join(entries) or "none: this agent has no preset file"
    close = difflib.get_close_matches(preset, entries, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise PresetError(
        f"unknown preset '{preset}' for agent '{agent}' (known: {known}, or 'auto' / 'none'){hint}"
    )


def lookup(agent: str, env: str) -> dict[str, Any]:
    """The dotted keys ``auto`` applies to ``agent`` on ``env`` ({} if there is no entry)."""
    return resolve(agent, env, AUTO)[1]
