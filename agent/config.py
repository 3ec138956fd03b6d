"""Typed trial configs: defaults in one place, overlaid by dotted keys from YAML or the CLI.

A trial config is the top-level fields below plus one section per agent the trial uses
(``sac.lr``, ``ppo.num_envs``, ``world_model.deter``), each validated against the ``Config``
model that agent registered. Every problem is collected with its dotted key path, so a sweep file
can report all of them at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from init_schemes import InitConfig, RegistryError, suggest


class TrialConfig(BaseModel):
    """One trial: which agent on which env with which init, for how long."""

    model_config = ConfigDict(extra="allow")

    agent: str = Field("sac", description="agent registry name")
    env: str = Field("Pendulum-v1", description="environment registry name or gymnasium id")
    seed: int = Field(0, ge=0, description="seed of networks, replay sampling and envs")
    seeds_per_trial: int = Field(1, ge=1, description="seeds trained together (seed-batched): "
                                 "seed, seed+1, ... unless `seeds` lists them")
    seeds: list[int] | None = Field(None, description="the seeds of a seed-batched trial "
                                    "(the sweep sets it; seeds[0] == seed)")
    total_steps: int = Field(10_000, gt=0, description="real environment steps")
    eval_every: int = Field(1_000, gt=0, description="env steps between evaluations")
    eval_episodes: int = Field(5, gt=0, description="deterministic episodes per evaluation")
    checkpoint_every: int = Field(1, ge=0, description="checkpoint every N evals (0: never)")
    diag_states: int = Field(1_000, ge=0, description="states for the step-0 init diagnostics")
    threads: int = Field(1, gt=0, description="torch threads inside the trial")
    init: InitConfig = Field(default_factory=InitConfig)

    @model_validator(mode="after")
    def _check_seeds(self) -> TrialConfig:
        if self.seeds is None:
            return self
        if not self.seeds or any(s < 0 for s in self.seeds) or \
                len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if "seeds_per_trial" not in self.model_fields_set:
            self.seeds_per_trial = len(self.seeds)
        if self.seeds_per_trial != len(self.seeds):
            raise ValueError(f"seeds_per_trial={self.seeds_per_trial} but seeds lists "
                             f"{len(self.seeds)}: {self.seeds}")
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
        return list(self.seeds) if self.seeds is not None else \
            list(range(self.seed, self.seed + self.seeds_per_trial))

    def section(self, name: str) -> Any:
        """The validated sub-config of agent ``name`` (defaults if the trial set none)."""
        value = getattr(self, name, None)
        if value is None:
            from agent.registry import agents

            value = agents.get(name).Config()
            setattr(self, name, value)
        return value

    def to_dict(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        if self.seed_batched:
            out["seeds"] = self.run_seeds()
        else:  # a plain trial's config.json stays as it was
            out.pop("seeds", None)
        for key in self.model_extra or {}:
            out[key] = getattr(self, key).model_dump(mode="json")
        return out


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


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> dotted keys (dict-valued leaves such as init.gains are flattened too)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
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


def _pydantic_problems(err: ValidationError, prefix: str = "",
                       model: type[BaseModel] | None = None) -> list[tuple[str, str]]:
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


def build_config(values: dict[str, Any] | None = None) -> TrialConfig:
    """Validate dotted or nested overrides into a :class:`TrialConfig` or raise ConfigError."""
    from agent.common.envs import EnvError, check_env, get_env
    from agent.registry import agents

    data = nest(values or {})
    problems: list[tuple[str, str]] = []
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
        agent_cls = agents.get(agent_name)
    except RegistryError as err:
        problems.append(("agent", str(err)))
        agent_cls = None
    try:
        check_env(get_env(top.get("env", "Pendulum-v1")))
    except (RegistryError, EnvError) as err:
        problems.append(("env", str(err)))
    parsed: dict[str, BaseModel] = {}
    for name, value in sections.items():
        if name not in agents:
            options = list(top_fields) + agents.names()
            problems.append((name, "unknown key" + suggest(name, options)))
            continue
        if not isinstance(value, dict):
            problems.append((name, f"must be a section (mapping), got {value!r}"))
            continue
        try:
            parsed[name] = agents.get(name).Config(**value)
        except ValidationError as err:
            problems += _pydantic_problems(err, prefix=f"{name}.", model=agents.get(name).Config)
    if cfg is not None and cfg.seed_batched and agent_cls is not None:
        from agent.common.seed_batch import get_batched

        try:
            get_batched(agent_name)
        except RegistryError as err:
            problems.append(("seeds_per_trial", str(err)))
    if problems:
        raise ConfigError(problems)
    assert cfg is not None
    for name, section in parsed.items():
        setattr(cfg, name, section)
    if agent_cls is not None:
        for name in getattr(agent_cls, "sections", (agent_name,)):
            cfg.section(name)
    return cfg
