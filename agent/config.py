"""Typed trial configs: defaults in one place, overlaid by dotted keys from YAML or the CLI.

A trial config is the top-level fields below plus one section per agent the trial uses
(``sac.lr``, ``ppo.num_envs``, ``world_model.deter``), each validated against the ``Config``
model that agent registered. Every problem is collected with its dotted key path, so a sweep file
can report all of them at once.

No torch, Ray or plotting library is imported here: the agents are checked through their
declarations in ``agent/registry.py`` (config model, sections, pixels, devices, seed batching;
``agents.info``) and the registry-named values (init schemes, scenarios, activations, envs) through
torch-free name tables, so a config or a whole sweep file validates in well under a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.common.envs import ObservationConfig
from init_schemes.config import InitConfig
from initablate.registry import RegistryError, suggest
from sweeps.trialdir import flatten


class TrialConfig(BaseModel):
    """One trial: which agent on which env with which init, for how long."""

    model_config = ConfigDict(extra="allow")

    agent: str = Field("sac", description="agent registry name")
    env: str = Field("Pendulum-v1", description="environment registry name or gymnasium id")
    seed: int = Field(0, ge=0, description="seed of networks, replay sampling and envs")
    seeds_per_trial: int = Field(
        1,
        ge=1,
        description="seeds trained together (seed-batched): "
        "seed, seed+1, ... unless `seeds` lists them",
    )
    seeds: list[int] | None = Field(
        None, description="the seeds of a seed-batched trial (the sweep sets it; seeds[0] == seed)"
    )
    total_steps: int = Field(10_000, gt=0, description="real environment steps")
    eval_every: int = Field(1_000, gt=0, description="env steps between evaluations")
    eval_episodes: int = Field(5, gt=0, description="deterministic episodes per evaluation")
    checkpoint_every: int = Field(1, ge=0, description="checkpoint every N evals (0: never)")
    diag_states: int = Field(1_000, ge=0, description="states for the step-0 init diagnostics")
    threads: int = Field(1, gt=0, description="torch threads inside the trial")
    preset: str = Field(
        "auto",
        description="tuned settings of agent/presets/<agent>.yaml, "
        "applied under the keys you set: auto (the entry of the env, if any), "
        "none, or an entry name; the resolved config records the one used",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="where networks and tensors live; auto: CUDA when present and the "
        "agent supports it (agent.base.resolve_device), else CPU",
    )
    observation: ObservationConfig = Field(
        default_factory=ObservationConfig,
        description="state | pixels | pixels+state, image size, action repeat (agent.common.envs)",
    )
    init: InitConfig = Field(default_factory=InitConfig)

    @model_validator(mode="after")
    def _check_seeds(self) -> TrialConfig:
        if self.seeds is None:
            return self
        if (
            not self.seeds
            or any(s < 0 for s in self.seeds)
            or len(set(self.seeds)) != len(self.seeds)
        ):
            raise ValueError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if "seeds_per_trial" not in self.model_fields_set:
            self.seeds_per_trial = len(self.seeds)
        if self.seeds_per_trial != len(self.seeds):
            raise ValueError(
                f"seeds_per_trial={self.seeds_per_trial} but seeds lists "
                f"{len(self.seeds)}: {self.seeds}"
            )
        if "seed" in self.model_fields_set and self.seed != self.seeds[0]:
            raise ValueError(f"seed={self.seed} must be the first of seeds {self.seeds}")
        self.seed = self.seeds[0]
        return self

    @property
    def seed_batched(self) -> bool:
        """Whether the trial trains its seeds as one batched model (agent.common.seed_batch)."""
        return self.seeds_per_trial > 1 or self.seeds is not None

    def run_seeds(self) -> list[int]:
        """The seeds this trial trains: ``seeds``, or seed, seed+1, ..., seed+K-1."""
        return (
            list(self.seeds)
            if self.seeds is not None
            else list(range(self.seed, self.seed + self.seeds_per_trial))
        )

    def section(self, name: str) -> Any:
        """The validated sub-config of agent ``name`` (defaults if the trial set none)."""
        value = getattr(self, name, None)
        if value is None:
            from agent.registry import agents

            value = agents.info(name).config()
            setattr(self, name, value)
        return value

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as JSON-ready nested dicts (config.json, sweep_resolved.json).

        Keys added after results were stored (``ADDED_KEYS``) are left out while they hold
        their no-op value, so a config that does not use them resolves to the same dict as
        before they existed, and stored sweeps still resume (sweeps.runner compares them).
        """
        out = self.model_dump(mode="json")
        for key, is_noop in ADDED_KEYS.items():
            if key in out and is_noop(out[key]):
                del out[key]
        if self.seed_batched:
            out["seeds"] = self.run_seeds()
        else:  # a plain trial's config.json stays as it was
            out.pop("seeds", None)
        for key in self.model_extra or {}:
            out[key] = getattr(self, key).model_dump(mode="json")
        return out


#: top-level keys newer than the stored results -> whether a value is a no-op (left out of
#: to_dict(); "auto" is a preset nobody resolved: a TrialConfig built without build_config)
ADDED_KEYS: dict[str, Any] = {
    "preset": lambda v: v in ("none", "auto"),
    "device": lambda v: v == "auto",
    "observation": lambda v: (
        v
        == TrialConfig.model_fields["observation"]
        .get_default(call_default_factory=True)
        .model_dump(mode="json")
    ),
}


class ConfigError(ValueError):
    """Every problem of a config, each as (dotted key, message)."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config"):
        self.problems = problems
        self.source = source
        super().__init__("\n".join(f"{source}: {k}: {m}" for k, m in problems))


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{'a.b': 1, 'a': {'c': 2}} -> {'a': {'b': 1, 'c': 2}}. Later keys win."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if isinstance(value, dict) and key != "init.gains" and key != "init.roles":
            value = nest(value)
        parts = str(key).split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError([(key, f"'{p}' is a value, not a section")])
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = deep_merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
    return out


def deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = deep_merge(out[k], v) if both else v
    return out


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) model that ``loc[:-1]`` points into."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _pydantic_problems(
    err: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[tuple[str, str]]:
    problems = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            options = _fields_at(model, e["loc"]) if model else []
            msg = "unknown key" + suggest(str(e["loc"][-1]), options)
        elif "input" in e and e["type"] not in ("value_error", "missing"):
            msg = f"{msg} (got {e['input']!r})"
        problems.append((prefix + loc, msg))
    return problems


def _with_preset(
    data: dict[str, Any], problems: list[tuple[str, str]]
) -> tuple[dict[str, Any], str, list[str]]:
    """``data`` laid over the preset its ``agent``, ``env`` and ``preset`` keys choose.

    Returns (merged data, the preset used, the dotted keys it supplied). Explicit keys win; a
    preset that supplies nothing (every key given) counts as unused unless it was named.
    """
    from agent.presets import AUTO, NONE, PresetError, resolve

    choice = data.get("preset", AUTO)
    agent, env = data.get("agent", "sac"), data.get("env", "Pendulum-v1")
    if not all(isinstance(x, str) for x in (choice, agent, env)):
        return data, NONE, []  # TrialConfig reports the wrong type
    try:
        name, flat = resolve(agent, env, choice)
    except PresetError as err:
        problems.append(("preset", str(err)))
        return data, NONE, []
    given = flatten(data)
    supplied = {
        k: v
        for k, v in flat.items()
        if k not in given and not any(k.startswith(g + ".") for g in given)
    }
    if not supplied and choice == AUTO:
        name = NONE
    return deep_merge(nest(supplied), data), name, list(supplied)


def _changes_defaults(keys: list[str], cfg: TrialConfig) -> bool:
    """Whether any dotted ``section.field`` of the resolved ``cfg`` differs from its default."""
    for key in keys:
        section, _, field = key.partition(".")
        value = getattr(cfg.section(section), field, None)
        info = type(cfg.section(section)).model_fields.get(field)
        if info is None or info.get_default(call_default_factory=True) != value:
            return True
    return False


def build_config(values: dict[str, Any] | None = None) -> TrialConfig:
    """Validate dotted or nested overrides into a :class:`TrialConfig` or raise ConfigError."""
    from agent.common.envs import EnvError, check_env, get_env
    from agent.registry import agents

    problems: list[tuple[str, str]] = []
    data, preset, preset_keys = _with_preset(nest(values or {}), problems)
    top_fields = set(TrialConfig.model_fields)
    sections = {k: v for k, v in data.items() if k not in top_fields}
    top = {k: v for k, v in data.items() if k in top_fields}
    try:
        cfg = TrialConfig(**top)
    except ValidationError as err:
        problems += _pydantic_problems(err, model=TrialConfig)
        cfg = None
    agent_name = top.get("agent", "sac")
    try:
        agent_info = agents.info(agent_name)
    except RegistryError as err:
        problems.append(("agent", str(err)))
        agent_info = None
    try:
        env_spec = get_env(top.get("env", "Pendulum-v1"))
        if cfg is not None:
            env_spec = env_spec.with_observation(cfg.observation)
        check_env(env_spec)
    except (RegistryError, EnvError) as err:
        problems.append(("observation" if cfg and cfg.observation.pixels else "env", str(err)))
    if cfg is not None and agent_info is not None:
        if cfg.observation.pixels and not agent_info.pixels:
            problems.append(
                (
                    "observation.mode",
                    f"agent '{agent_name}' takes only state "
                    f"observations, not '{cfg.observation.mode}' (pixel agents: "
                    "world_model and the model-based ones)",
                )
            )
        if cfg.device == "cuda" and "cuda" not in agent_info.devices:
            problems.append(("device", f"agent '{agent_name}' runs on CPU only"))
    parsed: dict[str, BaseModel] = {}
    for name, value in sections.items():
        if name not in agents:
            options = list(top_fields) + agents.names()
            problems.append((name, "unknown key" + suggest(name, options)))
            continue
        if not isinstance(value, dict):
            problems.append((name, f"must be a section (mapping), got {value!r}"))
            continue
        model = agents.info(name).config
        try:
            parsed[name] = model(**value)
        except ValidationError as err:
            problems += _pydantic_problems(err, prefix=f"{name}.", model=model)
    if cfg is not None and cfg.seed_batched and agent_info is not None and not agent_info.batched:
        able = ", ".join(n for n in agents.names() if agents.info(n).batched) or "none"
        problems.append(
            (
                "seeds_per_trial",
                f"agent '{agent_name}' cannot train seeds together "
                f"(seeds_per_trial > 1); agents that can: {able}. Use "
                f"seeds_per_trial: 1 for '{agent_name}'",
            )
        )
    if agent_info is not None:
        readable = agent_info.sections
        for key in preset_keys:
            if key.split(".")[0] not in readable:
                problems.append(
                    (
                        "preset",
                        f"agent/presets/{agent_name}.yaml: {preset}: '{key}' "
                        f"is not in a section agent '{agent_name}' reads "
                        f"({', '.join(readable)})",
                    )
                )
    if problems:
        raise ConfigError(problems)
    assert cfg is not None
    for name, section in parsed.items():
        setattr(cfg, name, section)
    if agent_info is not None:
        for name in agent_info.sections:
            cfg.section(name)
    if data.get("preset", "auto") == "auto" and not _changes_defaults(preset_keys, cfg):
        preset = "none"  # every key it supplied holds its default: the config is as without it
    cfg.preset = preset
    return cfg


# --- the keys, for `sweep keys` ------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    """One config key: its dotted name, section ('' for top level), type, default, meaning."""

    section: str
    key: str
    type: str
    default: str
    description: str


def config_keys(agent: str | None = None) -> list[KeyInfo]:
    """Every key a trial config can set, from the pydantic models: the top-level keys, ``init.*``
    and the sections of ``agent`` (every registered agent's when None)."""
    from agent.registry import agents

    rows = _model_keys(TrialConfig, "", "")
    if agent is None:
        names = agents.names()
    else:
        names = list(agents.info(agent).sections)
    for name in names:
        rows += _model_keys(agents.info(name).config, f"{name}.", name)
    return rows


def _model_keys(model: type[BaseModel], prefix: str, section: str) -> list[KeyInfo]:
    rows: list[KeyInfo] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += _model_keys(ann, f"{prefix}{name}.", f"{prefix}{name}")
            continue
        default = info.get_default(call_default_factory=True)
        rows.append(
            KeyInfo(
                section,
                prefix + name,
                _type_name(ann),
                _show(default),
                " ".join((info.description or "").split()),
            )
        )
    return rows


def _type_name(ann: Any) -> str:
    if get_origin(ann) is Literal:
        return "|".join(str(a) for a in get_args(ann))
    text = ann.__name__ if isinstance(ann, type) else str(ann)
    for noise in ("typing.", "pydantic.types.", "collections.abc."):
        text = text.replace(noise, "")
    return text.replace("NoneType", "None")


def _show(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if value is None:
        return "None"
    if isinstance(value, str):
        return value
    return json.dumps(value)
