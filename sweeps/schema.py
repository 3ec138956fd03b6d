"""Sweep files: a typed schema, expansion into trials, and validation before anything runs.

A sweep file is YAML with these keys (only ``name`` is required)::

    name: init_ablation            # names the results directory: results/<name>
    description: ...               # free text
    base:                          # a trial config, dotted or nested keys (agent/config.py)
      agent: sac
      sac.lr: 1.0e-3
    grid:                          # dotted key -> list of values; the trials are the cross product
      init.scheme: [fanin, orthogonal]
      env: [Pendulum-v1, Walker2d-v5]
    exclude:                       # partial configs: grid combinations matching all the keys of
      - {init.scheme: fanin, env: Walker2d-v5}     # an entry are dropped
    include:                       # partial configs added as extra combinations (base + entry),
      - {init.scheme: pytorch_default, env: Pendulum-v1}  # not crossed with the grid
    overrides:                     # per-case values: every combination (grid or include) whose
      - when: {env: Walker2d-v5}   # values match all of `when` gets `set` on top
        set: {sac.lr: 3.0e-4, total_steps: 100000}
    seeds: 5                       # a count (seeds 0..4) or a list [0, 3, 7]; one trial per seed,
                                   # or per K seeds with the trial key seeds_per_trial: K (trained
                                   # together as one batched model; `vectorized`: all the seeds)
    metric: eval/return            # what "best" means in the progress view
    mode: max                      # max or min
    resources: {cpus: 1}           # per trial (gpus too)
    max_failures: 0                # Ray retries of a trial that raised, from its last checkpoint
    budgets:                       # named overlays, chosen with `sweep run FILE --budget NAME`
      quick:
        grid.env: [Pendulum-v1]    # grid.<key>: replace (or add) that axis; an include entry whose
                                   # value of <key> is not in the list is dropped too. Also
                                   # written grid: {env: [Pendulum-v1]}
        seeds: 2                   # replace the seeds
        base: {eval_episodes: 3}   # overlay base (grid, include and overrides still win)
        total_steps: 3000          # any other dotted key: set in every trial (the last word,
                                   # after base, grid, include and overrides)
    scheduler:                     # early stopping with Tune's ASHA, for a user who is tuning
      name: asha                   # (not measuring tuning cost): a trial whose metric is in the
      grace_period: 5000           # bottom 1/reduction_factor of its rung (env steps
      reduction_factor: 3          # grace_period x reduction_factor^k) stops there, for good:
                                   # state "stopped", never rerun by --resume, no final score
    search:                        # random search: `samples` configurations per combination,
      samples: 16                  # drawn when the file is expanded, every seed of one
      scoped:                      # configuration trains its values (see "random search" below)
        - when: {agent: sac}
          space: {sac.lr: "loguniform(1.0e-4, 3.0e-3)", sac.batch_size: "choice([64, 256])"}
    imports: [my_inits]            # modules (or .py files, relative to this file) registering
                                   # init schemes, agents or envs; imported before validation
    storage: results/init_ablation # default results/<name>, relative to the working directory
    analysis:                      # how `sweep report` scores the runs, declared before running
      final: {last: 3}             # final score = mean of the last 3 evaluations (the default),
                                   # or {from: 8000, to: 10000}: mean of the evals in that range
      auc: true                    # the normalised area under the eval curve is a declared score
      threshold: -200              # steps-to-threshold value (default: the env's reference score)
                                   # A budget may carry its own `analysis:` (its keys replace
                                   # these); sweep_resolved.json records the one a run used.

Order of application for one trial: defaults < ``base`` < the budget's ``base`` < grid values or
include entry < matching ``overrides`` (in file order) < a ``search:`` draw < the budget's other
keys < ``seed``.
Without ``--budget`` the file runs as written. Every expanded trial config is validated by
``agent.config.build_config``; its problems are reported at the YAML key that set the value, with
the line number.

Trial ids are ``t<combination index>_<values of the varying keys>_s<seed>``, e.g.
``t003_orthogonal_small_std_Pendulum-v1_s2``: deterministic (file order) and readable. The
varying keys are the grid and include keys whose values differ between trials.

Seed-batched trials: ``seeds_per_trial: K`` (any trial key position: base, grid, overrides,
budget) splits the seed list into consecutive chunks of K, and each chunk is one trial training
those seeds together (agent/common/seed_batch.py); ``seeds_per_trial: vectorized`` puts all the
seeds of a config in one trial. Its config has ``seed`` = the chunk's first seed,
``seeds_per_trial`` = its size and ``seeds`` = the chunk; its id ends in the seeds it covers
(``_s0-4`` for 0..4, ``_s3+7`` for [3, 7]). A chunk of one seed is a plain trial.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import itertools
import json
import math
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

SWEEPS_DIR = Path(__file__).resolve().parent
METRIC_NAMESPACES = ("eval/", "train/", "loss/", "perf/", "init/", "model/")
MAX_ID_LEN = 96
MAX_VALUE_LEN = 32


# --- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a sweep file, at a YAML key path (and line, when known)."""

    path: str
    message: str
    line: int | None = None

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SweepError(ValueError):
    """Every problem of a sweep file; ``str()`` has one line per problem."""

    def __init__(self, file: str, problems: list[Problem]):
        self.file = file
        self.problems = problems
        super().__init__("\n".join(p.format(file) for p in problems))


# --- the schema --------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Resources(_Strict):
    """What one trial reserves on the Ray cluster."""

    cpus: float = Field(1.0, gt=0, description="CPUs per trial")
    gpus: float = Field(0.0, ge=0, description="GPUs per trial")


class Override(_Strict):
    """Values set in every combination whose values match all of ``when``."""

    when: dict[str, Any] = Field(min_length=1)
    set: dict[str, Any] = Field(min_length=1)


NonEmptyList = Annotated[list[Any], Field(min_length=1)]


class FinalScore(_Strict):
    """Which evaluations make a run's final score: the last ``last``, or those in [from, to]."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    last: int | None = Field(None, ge=1, description="mean of the last N evaluations")
    from_: float | None = Field(None, alias="from", ge=0, description="first env step")
    to: float | None = Field(None, gt=0, description="last env step (inclusive)")

    @model_validator(mode="after")
    def _one_rule(self) -> FinalScore:
        window = self.from_ is not None or self.to is not None
        if self.last is not None and window:
            raise ValueError(
                "give either `last` (a number of evaluations) or `from`/`to` "
                "(an env-step range), not both"
            )
        if self.last is None and not window:
            raise ValueError(
                "give `last: N` (the last N evaluations) or `from: STEP` and "
                "`to: STEP` (the evaluations in that env-step range)"
            )
        if window and (self.from_ is None or self.to is None):
            raise ValueError("an env-step range needs both `from` and `to`")
        if window and self.from_ > self.to:
            raise ValueError(f"`from` ({self.from_:g}) is after `to` ({self.to:g})")
        return self


class AnalysisSpec(_Strict):
    """How `sweep report` scores this sweep, declared before running (``analysis:``)."""

    final: FinalScore = Field(default_factory=lambda: FinalScore(last=3))
    auc: bool = Field(
        False, description="the normalised AUC of the eval curve is a declared score too"
    )
    threshold: float | None = Field(None, description="steps-to-threshold value")

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return float(v)
        return v

    def resolved(self) -> dict[str, Any]:
        """Plain dict for sweep_resolved.json: ``{"final": {"last": 3} | {"from", "to"}, ...}``."""
        final = self.final.model_dump(by_alias=True, exclude_none=True)
        return {"final": final, "auc": self.auc, "threshold": self.threshold}


def parse_analysis(
    data: Any, where: tuple = ("analysis",), doc: Any = None, base: AnalysisSpec | None = None
) -> tuple[AnalysisSpec | None, list[Problem]]:
    """Validate an ``analysis:`` mapping (its keys replace those of ``base``); problems carry the
    YAML path ``where`` + key and, with the round-trip ``doc``, the line."""
    if not isinstance(data, dict):
        return None, [
            Problem(
                _show(where),
                "must be a mapping of keys (final, auc, threshold), "
                f"got {_kind(data) if isinstance(data, list) else repr(data)}",
                _line(doc, where),
            )
        ]
    merged = dict(base.model_dump(by_alias=True, exclude_none=True)) if base else {}
    if base is not None:
        merged["final"] = base.final.model_dump(by_alias=True, exclude_none=True)
        if base.threshold is None:
            merged.pop("threshold", None)
    merged.update(data)
    try:
        return AnalysisSpec.model_validate(merged), []
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = (*where, *(p for p in e["loc"] if p != "[key]"))
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                known = (
                    ["last", "from", "to"]
                    if "final" in loc[len(where) : -1]
                    else ["final", "auc", "threshold"]
                )
                from init_schemes import suggest

                hint = suggest(str(loc[-1]), known)
                msg = f"unknown key{hint} (known: {', '.join(known)})"
            elif e["type"] in (
                "int_type",
                "float_type",
                "bool_type",
                "model_type",
                "dict_type",
                "int_from_float",
                "greater_than",
                "greater_than_equal",
            ):
                msg = _type_message(e["type"], msg, e.get("input"), loc)
            problems.append(Problem(_show(loc), msg, _line(doc, loc)))
        return None, problems


class ScopedSpace(_Strict):
    """A search space for the combinations whose values match all of ``when`` (e.g. one agent)."""

    when: dict[str, Any] = Field(min_length=1)
    space: dict[str, Any] = Field(min_length=1)


class Search(_Strict):
    """Random search: ``samples`` configurations drawn per combination (see ``_sample_combos``)."""

    samples: int = Field(gt=0, description="sampled configurations per combination")
    seed: int = Field(0, ge=0, description="seed of the draws")
    draws: Literal["shared", "per_cell"] = "shared"
    space: dict[str, Any] = Field(default_factory=dict)
    scoped: list[ScopedSpace] = Field(default_factory=list)


class Scheduler(_Strict):
    """Tune's ASHA (asynchronous successive halving) over the expanded trials: the trials and
    their order stay those of the file (so ``--dry-run`` and ``--resume`` keep their meaning);
    ASHA only decides which of them stop early, on the sweep's ``metric`` and ``mode``."""

    name: Literal["asha"]
    grace_period: int = Field(gt=0, description="env steps a trial trains before any stop")
    reduction_factor: float = Field(3.0, gt=1, description="keep the top 1/rf at each rung")
    brackets: int = Field(1, ge=1, description="ASHA brackets (1: plain successive halving)")

    def rungs(self, max_t: int) -> list[int]:
        """The env steps at which a trial of ``max_t`` steps can be stopped (bracket 0)."""
        out, t = [], float(self.grace_period)
        while t < max_t:
            out.append(int(t))
            t *= self.reduction_factor
        return out


class SweepSpec(_Strict):
    """The keys of a sweep file (see the module docstring)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)
    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, NonEmptyList] | None = None
    include: list[dict[str, Any]] = Field(default_factory=list)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0])
    metric: str = "eval/return"
    mode: Literal["max", "min"] = "max"
    resources: Resources = Field(default_factory=Resources)
    max_failures: int = Field(0, ge=0)
    budgets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    imports: list[str] = Field(default_factory=list)
    storage: str | None = None
    analysis: dict[str, Any] | None = None  # validated by parse_analysis (budgets may replace it)
    search: Search | None = None
    scheduler: Scheduler | None = None

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]] | None) -> dict[str, list[Any]]:
        if not v:
            raise ValueError(
                "empty grid: give at least one key with a list of values, or leave "
                "`grid` out for a single configuration"
            )
        return v

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> list[int]:
        return parse_seeds(v)

    @field_validator("budgets", mode="before")
    @classmethod
    def _budgets(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({} if b is None else b) for k, b in v.items()}
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if not v.startswith(METRIC_NAMESPACES):
            raise ValueError(
                f"'{v}' is not a namespaced metric key (e.g. eval/return, "
                f"train/return, loss/critic; namespaces: "
                f"{', '.join(METRIC_NAMESPACES)})"
            )
        return v


def parse_seeds(v: Any) -> list[int]:
    """``5`` -> [0..4]; ``[0, 3]`` -> [0, 3]; a clear ValueError for anything else."""
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 1:
            raise ValueError(f"must be a positive number of seeds, got {v}")
        return list(range(v))
    if isinstance(v, list):
        if not v:
            raise ValueError("empty list of seeds")
        for s in v:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ValueError(f"must be non-negative integers, got {s!r}")
        if len(set(v)) != len(v):
            raise ValueError(f"repeated seeds in {v}")
        return list(v)
    raise ValueError(f"must be a count (e.g. 5) or a list of seeds (e.g. [0, 1, 2]), got {v!r}")


# --- resolved sweeps ---------------------------------------------------------------------------


def seeds_text(seeds: list[int] | tuple[int, ...]) -> str:
    """[0, 1, 2] -> '0-2'; [3, 7] -> '3+7'; [2] -> '2'."""
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return "+".join(map(str, seeds))


@dataclass
class Trial:
    """One trial: one combination of the grid (or one include entry) with one seed, or with
    ``seeds_per_trial`` seeds trained together."""

    trial_id: str
    group: str  # "t003": the combination, shared by its seeds
    label: str  # the varying values, e.g. "orthogonal small_std Pendulum-v1"
    seeds: list[int]  # every seed the trial trains (one, unless it is seed-batched)
    values: dict[str, Any]  # varying key -> value
    config: dict[str, Any]  # the fully resolved nested trial config
    draw: int | None = None  # index of the sampled configuration (``search:``), else None

    @property
    def seed(self) -> int:
        """The trial's first seed (its config's ``seed``)."""
        return self.seeds[0]

    @property
    def seeds_label(self) -> str:
        """Every seed it trains, short: '2', '0-4', '3+7'."""
        return seeds_text(self.seeds)

    @property
    def total_steps(self) -> int:
        return int(self.config["total_steps"])


@dataclass
class Sweep:
    """A validated sweep file with its trials expanded for one budget."""

    name: str
    file: Path
    text: str
    spec: SweepSpec
    budget: str | None
    seeds: list[int]
    grid: dict[str, list[Any]]
    varying_keys: list[str]
    trials: list[Trial]
    imports: list[tuple[str, str | None]] = field(default_factory=list)  # (module, sys.path dir)
    analysis: AnalysisSpec | None = None  # the declared score (``analysis:``, budget's wins)
    search: dict[str, Any] | None = None  # the search's samples, seed, draws and distributions

    @property
    def storage(self) -> Path:
        return Path(self.spec.storage or f"results/{self.name}")

    @property
    def search_keys(self) -> list[str]:
        """The sampled keys (``search:``), in file order; empty without a search."""
        return list((self.search or {}).get("distributions", {}))

    def resolved(self) -> dict[str, Any]:
        """The content of sweep_resolved.json (docs/results_layout.md)."""
        if self.search is not None:
            out = self._resolved()
            out["search"] = self.search
            for entry, trial in zip(out["trials"], self.trials):
                entry["draw"] = trial.draw
                entry["searched"] = [k for k in trial.values if k not in self.varying_keys]
            return out
        return self._resolved()

    def _resolved(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "budget": self.budget,
            "metric": self.spec.metric,
            "mode": self.spec.mode,
            "seeds": self.seeds,
            "grid": self.grid,
            "varying_keys": self.varying_keys,
            "source": str(self.file),
            "resources": self.spec.resources.model_dump(),
            "max_failures": self.spec.max_failures,
            **(
                {"scheduler": self.spec.scheduler.model_dump()}
                if self.spec.scheduler is not None
                else {}
            ),
            **({"analysis": self.analysis.resolved()} if self.analysis is not None else {}),
            "trials": [
                {"trial_id": t.trial_id, "group": t.group, "config": t.config} for t in self.trials
            ],
        }


def find_sweep_file(name: str | Path) -> Path:
    """A bare name (``init_ablation.yaml`` or ``init_ablation``) is looked up among the YAMLs
    shipped in ``sweeps/`` first, then in the working directory; a path is used as given."""
    text = str(name)
    if "/" in text or text.startswith("."):
        path = Path(text)
        if path.is_file():
            return path
        if path.is_dir():
            inside = sorted(p.name for p in path.glob("*.yaml"))[:3]
            raise SweepError(
                text,
                [
                    Problem(
                        "",
                        "is a directory, not a sweep file"
                        + (f" (it holds {', '.join(inside)})" if inside else ""),
                    )
                ],
            )
        raise SweepError(text, [Problem("", "no such sweep file")])
    stems = [text] if text.endswith((".yaml", ".yml")) else [f"{text}.yaml", f"{text}.yml", text]
    for base in (SWEEPS_DIR, Path.cwd()):
        for stem in stems:
            if (base / stem).is_file():
                return base / stem
    shipped = sorted(p.name for p in SWEEPS_DIR.glob("*.yaml"))
    hint = difflib.get_close_matches(text, shipped, n=1, cutoff=0.5)
    msg = (
        f"no such sweep file (looked in {SWEEPS_DIR}/ and the working directory"
        + (f"; did you mean '{hint[0]}'?" if hint else "")
        + f"; shipped: {', '.join(shipped) or 'none'})"
    )
    raise SweepError(text, [Problem("", msg)])


MAX_TRIALS = 20_000
"""More trials than this are refused before expanding the grid, unless ``max_trials`` (the
``--max-trials`` option) allows them."""


def load_sweep(
    name: str | Path,
    budget: str | None = None,
    *,
    check_budgets: bool = True,
    max_trials: int | None = MAX_TRIALS,
) -> Sweep:
    """Parse, validate and expand a sweep file; raise :class:`SweepError` listing every problem.

    With ``check_budgets`` every budget is expanded and validated too, so a broken budget is
    found before a run of another budget starts.
    """
    path = find_sweep_file(name)
    file = str(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise SweepError(file, [Problem("", f"cannot read: {err}")]) from None
    doc = _parse_yaml(text, file)
    data = _plain(doc)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise SweepError(file, _schema_problems(err, doc)) from None
    problems: list[Problem] = []
    imports = _import_modules(spec, doc, path.parent, problems)
    if problems:
        raise SweepError(file, problems)
    if budget is not None and budget not in spec.budgets:
        known = ", ".join(spec.budgets) or "none defined"
        hint = difflib.get_close_matches(budget, list(spec.budgets), n=1, cutoff=0.5)
        msg = (
            f"unknown budget '{budget}'"
            + (f"; did you mean '{hint[0]}'?" if hint else "")
            + f" (budgets: {known})"
        )
        raise SweepError(file, [Problem("budgets", msg, _line(doc, ("budgets",)))])
    analyses = _analyses(spec, doc, problems)
    to_check = [budget]
    if check_budgets:
        to_check += [b for b in spec.budgets if b != budget]
    result = None
    for b in to_check:
        sweep = _expand(spec, doc, path, text, b, problems, max_trials)
        if b == budget:
            result = sweep
    if problems:
        raise SweepError(file, _dedupe(problems))
    assert result is not None
    result.imports = imports
    result.analysis = analyses.get(budget, analyses.get(None))
    return result


def _analyses(spec: SweepSpec, doc: Any, problems: list[Problem]) -> dict[str | None, Any]:
    """The declared ``analysis:`` of the file (key None) and of each budget that has its own."""
    out: dict[str | None, Any] = {}
    top = None
    if spec.analysis is not None:
        top, found = parse_analysis(spec.analysis, ("analysis",), doc)
        problems += found
        out[None] = top
    for name, budget in spec.budgets.items():
        if "analysis" in budget:
            parsed, found = parse_analysis(
                budget["analysis"], ("budgets", name, "analysis"), doc, base=top
            )
            problems += found
            out[name] = parsed
    return out


# --- parsing and line numbers ------------------------------------------------------------------


def _parse_yaml(text: str, file: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        doc = YAML(typ="rt", pure=True).load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SweepError(file, [Problem("", "invalid YAML: " + _yaml_message(err), line)]) from None
    except YAMLError as err:
        raise SweepError(
            file, [Problem("", f"invalid YAML: {' '.join(str(err).split())}")]
        ) from None
    if doc is None:
        raise SweepError(
            file,
            [
                Problem(
                    "", "the file is empty; a sweep needs at least `name` and a `base` or `grid`"
                )
            ],
        )
    if not isinstance(doc, dict):
        raise SweepError(
            file,
            [
                Problem(
                    "",
                    "the top level must be a mapping of keys (name, "
                    f"base, grid, seeds, ...), got a {_kind(doc)}",
                    1,
                )
            ],
        )
    return doc


def _yaml_message(err: Any) -> str:
    """ruamel's parser messages, said in terms of what to fix."""
    problem = " ".join(str(err.problem or "").split())
    dup = re.search(r'found duplicate key "([^"]*)"', problem)
    if dup:
        return f"duplicate key '{dup.group(1)}' (each key may appear once per mapping)"
    if "'\\t'" in problem or "\t" in problem:
        return "a tab character: YAML indents with spaces only"
    if "expected <block end>" in problem or "mapping values are not allowed" in problem:
        return (
            f"{problem}: this line's indentation does not match the keys above it (or a "
            "':' is missing or extra)"
        )
    context = " ".join(str(err.context or "").split())
    return f"{context}: {problem}" if context else problem or "cannot parse"


def _kind(x: Any) -> str:
    return "list" if isinstance(x, list) else type(x).__name__


def _plain(x: Any) -> Any:
    """ruamel's round-trip types -> plain dicts, lists, ints, floats, strs."""
    if isinstance(x, dict):
        return {_plain(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    if isinstance(x, bool) or x is None:
        return x
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return float(x)
    if isinstance(x, str):
        return str(x)
    return x


def _line(doc: Any, path: tuple) -> int | None:
    """1-based line of the YAML node at ``path`` (keys and list indices), or of its nearest
    existing parent."""
    node, line = doc, None
    for part in path:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, dict) and part in node:
                line = lc.key(part)[0] + 1 if lc is not None else line
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                line = lc.item(part)[0] + 1 if lc is not None else line
                node = node[part]
            else:
                break
        except (KeyError, IndexError, AttributeError, TypeError):
            break
    return line


def _show(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_problems(err: ValidationError, doc: Any) -> list[Problem]:
    from init_schemes import suggest

    problems = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if p != "[key]")
        msg = e["msg"].removeprefix("Value error, ")
        kind = e["type"]
        if kind == "extra_forbidden":
            fields = _fields_at(loc)
            msg = f"unknown key{suggest(str(loc[-1]), fields)} (known: {', '.join(fields)})"
        elif kind == "missing":
            msg = "missing required key"
        elif kind == "too_short" and loc[:1] == ("grid",):
            msg = "empty list of values: the grid would have no trials"
        elif kind == "too_short":
            msg = "must not be empty"
        elif kind in (
            "list_type",
            "dict_type",
            "string_type",
            "int_type",
            "float_type",
            "bool_type",
            "model_type",
            "literal_error",
            "int_from_float",
            "string_pattern_mismatch",
            "greater_than",
            "greater_than_equal",
            "string_too_long",
        ):
            msg = _type_message(kind, msg, e.get("input"), loc)
        problems.append(Problem(_show(loc), msg, _line(doc, loc)))
    return problems


def _type_message(kind: str, msg: str, value: Any, loc: tuple) -> str:
    expected = {
        "list_type": "a list",
        "dict_type": "a mapping of keys",
        "string_type": "a string",
        "int_type": "an integer",
        "float_type": "a number",
        "bool_type": "true or false",
        "model_type": "a mapping of keys",
        "int_from_float": "an integer",
    }.get(kind)
    got = f"got {_kind(value) if isinstance(value, (dict, list)) else repr(value)}"
    if expected:
        hint = ""
        if kind == "list_type" and loc[:1] == ("grid",):
            hint = f"; write [{value}] for a single value" if not isinstance(value, dict) else ""
        return f"must be {expected}, {got}{hint}"
    if kind == "string_pattern_mismatch":
        return f"must be letters, digits, '_', '.' or '-' (it names a directory), {got}"
    return f"{msg} ({got})"


def _fields_at(loc: tuple) -> list[str]:
    model: type[BaseModel] = SweepSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        ann = getattr(model.model_fields.get(str(part)), "annotation", None)
        inner = getattr(ann, "__args__", (ann,))
        sub = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is None:
            break
        model = sub
    return list(model.model_fields)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


# --- imports -----------------------------------------------------------------------------------


def _import_modules(
    spec: SweepSpec, doc: Any, here: Path, problems: list[Problem]
) -> list[tuple[str, str | None]]:
    """Import ``imports`` (the YAML's directory and the working directory on sys.path)."""
    done = []
    for i, name in enumerate(spec.imports):
        where = ("imports", i)
        module, directory = name, None
        if name.endswith(".py") or "/" in name:
            path = Path(name) if Path(name).is_absolute() else here / name
            if not path.exists() and Path(name).exists():
                path = Path(name)
            if not path.is_file():
                problems.append(
                    Problem(
                        _show(where),
                        f"cannot import '{name}': file not found (relative to {here})",
                        _line(doc, where),
                    )
                )
                continue
            module, directory = path.stem, str(path.resolve().parent)
        try:
            import_user_module(module, [directory] if directory else [str(here.resolve())])
        except Exception as err:  # any error of user code: report it, don't crash
            msg = " ".join(str(err).split())
            problems.append(
                Problem(
                    _show(where),
                    f"cannot import '{name}': {type(err).__name__}: {msg}",
                    _line(doc, where),
                )
            )
            continue
        done.append((module, directory or str(here.resolve())))
    return done


def import_user_module(module: str, paths: list[str]) -> None:
    """Import ``module`` with ``paths`` and the working directory on sys.path (also used in the
    Ray workers, which start elsewhere)."""
    for p in [*paths, str(Path.cwd())]:
        if p and p not in sys.path:
            sys.path.append(p)
    importlib.import_module(module)


# --- expansion ---------------------------------------------------------------------------------


@dataclass
class _Combo:
    values: dict[str, Any]  # dotted key -> value (grid values or the include entry)
    where: dict[str, tuple]  # dotted key -> YAML path that set it
    draw: int | None = None  # ``search:``: index of the sampled configuration
    sampled: dict[str, Any] = field(default_factory=dict)  # ``search:``: the drawn values
    sampled_where: dict[str, tuple] = field(default_factory=dict)  # their distributions' paths


def _flatten(
    d: dict[str, Any],
    path: tuple,
    out: dict[str, Any] | None = None,
    where: dict[str, tuple] | None = None,
    prefix: str = "",
) -> tuple[dict, dict]:
    """Nested/dotted mapping -> (dotted key -> value, dotted key -> YAML path)."""
    out = {} if out is None else out
    where = {} if where is None else where
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            _flatten(v, (*path, k), out, where, key + ".")
        else:
            out[key] = v
            where[key] = (*path, k)
    return out, where


_Report = Callable[[tuple, str], None]


@dataclass
class _Plan:
    """What the file and its budget ask for, before the cross product: the base keys, the grid
    axes, the seeds, the budget's last-word keys (``overlay``) and where each came from."""

    base: dict[str, Any]
    base_where: dict[str, tuple]
    grid: dict[str, list[Any]]
    grid_where: dict[str, tuple]
    seeds: list[int]
    overlay: dict[str, Any] = field(default_factory=dict)
    overlay_where: dict[str, tuple] = field(default_factory=dict)
    restricted: dict[str, list[Any]] = field(default_factory=dict)  # axes a budget narrowed
    search_overlay: dict[str, int] = field(default_factory=dict)  # budget's search.samples/.seed


def _expand(
    spec: SweepSpec,
    doc: Any,
    path: Path,
    text: str,
    budget: str | None,
    problems: list[Problem],
    max_trials: int | None = None,
) -> Sweep:
    """The sweep file -> its trials, as a pipeline: budget -> seed-key checks -> cross product
    (refused early if too large) -> include/exclude -> random search -> overrides and one
    ``build_config`` per combination -> trial names and seed chunks. Every step reports its
    problems (YAML path, message, line); trials are built only when there are none."""
    n_before = len(problems)

    def problem(where: tuple, msg: str) -> None:
        problems.append(Problem(_show(where), msg, _line(doc, where)))

    plan = _plan(spec)
    if budget is not None:
        _apply_budget(spec, budget, plan, problem)
    _check_seed_keys(spec, plan, problem)
    empty = Sweep(spec.name, path, text, spec, budget, plan.seeds, plan.grid, [], [])
    if not _within_limit(spec, plan, max_trials, problem):
        return empty
    combos = _combinations(spec, plan, budget, problem)
    search = None
    if spec.search is not None:
        combos, search = _sample_combos(
            spec.search,
            plan.search_overlay,
            combos,
            plan.base,
            plan.grid,
            plan.overlay,
            budget,
            problem,
        )
    resolved = _resolve_configs(spec, plan, combos, budget, problem)
    if len(problems) > n_before:
        empty.search = search
        return empty
    varying, trials = _name_trials(spec, plan, resolved, problem)
    return Sweep(
        spec.name, path, text, spec, budget, plan.seeds, plan.grid, varying, trials, search=search
    )


def _plan(spec: SweepSpec) -> _Plan:
    base, base_where = _flatten(spec.base, ("base",))
    grid = {k: list(v) for k, v in (spec.grid or {}).items()}
    return _Plan(base, base_where, grid, {k: ("grid", k) for k in grid}, spec.seeds)


def _apply_budget(spec: SweepSpec, budget: str, plan: _Plan, problem: _Report) -> None:
    """Lay a budget over the plan: its seeds, grid axes (replacing the file's), search sizes,
    ``base`` entries (under grid values, includes and overrides) and trial config keys (the last
    word, in every trial)."""
    items = list(spec.budgets[budget].items())
    axes: list[tuple[str, Any, tuple]] = []  # the grid axes this budget replaces
    for key, value in items:
        where = ("budgets", budget, key)
        if key == "seeds":
            try:
                plan.seeds = parse_seeds(value)
            except ValueError as err:
                problem(where, str(err))
        elif key.startswith("grid."):
            axes.append((key.removeprefix("grid."), value, where))
        elif key == "search" or key.startswith("search."):
            plan.search_overlay.update(_budget_search(spec, key, value, where, problem))
        elif key == "grid":
            if not isinstance(value, dict) or not value:
                problem(where, f"must be a mapping of grid keys to lists, got {value!r}")
            else:
                axes += [(k, v, (*where, k)) for k, v in value.items()]
    for axis, value, where in axes:
        if not isinstance(value, list) or not value:
            problem(
                where, f"must be a non-empty list of values for the '{axis}' axis, got {value!r}"
            )
            continue
        plan.grid[axis], plan.grid_where[axis] = list(value), where
        plan.restricted[axis] = list(value)
    for key, value in items:
        if key in ("seeds", "grid", "search", "analysis") or key.startswith(("grid.", "search.")):
            continue
        if key in ("include", "exclude", "overrides", "budgets"):
            problem(
                ("budgets", budget, key),
                f"a budget cannot set '{key}'; it sets seeds, "
                "grid (or grid.<key>), base, or trial config keys (e.g. total_steps)",
            )
            continue
        if key == "base":  # overlays base: grid values, include entries and overrides win
            if not isinstance(value, dict):
                problem(("budgets", budget, key), f"must be a mapping, got {value!r}")
                continue
            flat, fwhere = _flatten(value, ("budgets", budget, "base"))
            plan.base.update(flat)
            plan.base_where.update(fwhere)
        else:  # the last word, set in every trial
            flat, fwhere = _flatten({key: value}, ("budgets", budget))
            plan.overlay.update(flat)
            plan.overlay_where.update(fwhere)
        for k in flat:
            if k in plan.grid:
                problem(
                    fwhere[k], f"'{k}' is a grid key; write grid.{k}: [...] to restrict its values"
                )


def _check_seed_keys(spec: SweepSpec, plan: _Plan, problem: _Report) -> None:
    """``seed`` (and a seed-batched trial's ``seeds``) come from the top-level ``seeds`` only."""
    for src in (plan.base_where, plan.grid_where, plan.overlay_where):
        for key in ("seed", "seeds"):
            if key in src:
                problem(src[key], "set seeds with the top-level `seeds` key (a count or a list)")
    for i, entry in enumerate(spec.include):
        for key in ("seed", "seeds"):
            if key in entry:
                problem(("include", i, key), "set seeds with the top-level `seeds` key")


def _within_limit(spec: SweepSpec, plan: _Plan, max_trials: int | None, problem: _Report) -> bool:
    """Count the trials before building them, so a huge grid is refused in no time instead of
    filling the memory."""
    keys = list(plan.grid)
    n_trials = (
        (math.prod(len(plan.grid[k]) for k in keys) + len(spec.include))
        * len(plan.seeds)
        * (spec.search.samples if spec.search is not None else 1)
    )
    if max_trials is None or n_trials <= max_trials:
        return True
    problem(
        ("grid",),
        f"expands to {n_trials:,} trials (grid "
        + " x ".join(f"{len(plan.grid[k])} {k}" for k in keys)
        + f" x {len(plan.seeds)} seeds), more than the limit of {max_trials:,}; pass "
        f"--max-trials {n_trials} to expand it anyway",
    )
    return False


def _combinations(
    spec: SweepSpec, plan: _Plan, budget: str | None, problem: _Report
) -> list[_Combo]:
    """The grid's cross product, less the excluded combinations, plus the included ones (an
    include whose value a budget's narrowed axis does not hold is left out)."""
    grid, keys = plan.grid, list(plan.grid)
    combos: list[_Combo] = []
    for idx in itertools.product(*(range(len(grid[k])) for k in keys)):
        values = {k: grid[k][i] for k, i in zip(keys, idx)}
        where = {k: (*plan.grid_where[k], i) for k, i in zip(keys, idx)}
        combos.append(_Combo(values, where))
    for i, entry in enumerate(spec.exclude):
        flat, _ = _flatten(entry, ("exclude", i))
        kept = [c for c in combos if not _matches(flat, {**plan.base, **c.values})]
        if len(kept) == len(combos) and budget is None:
            problem(("exclude", i), f"matches no combination of the grid ({_brief(flat)})")
        combos = kept
    for i, entry in enumerate(spec.include):
        flat, fwhere = _flatten(entry, ("include", i))
        if any(k in flat and flat[k] not in vals for k, vals in plan.restricted.items()):
            continue  # the budget restricts this axis to other values
        combos.append(_Combo(flat, fwhere))
    if not combos:
        problem(("grid",), "no trials: every combination is excluded")
    return combos


def _resolve_configs(
    spec: SweepSpec, plan: _Plan, combos: list[_Combo], budget: str | None, problem: _Report
) -> list[tuple[_Combo, dict[str, Any], int]]:
    """One trial config per combination: base, its values, the matching overrides, a search's
    draw, then the budget's last word; validated by ``build_config`` (problems name the YAML
    place that set the bad key). Returns (combination, config, seeds per trial)."""
    from agent.config import ConfigError, build_config

    resolved: list[tuple[_Combo, dict[str, Any], int]] = []
    used = [False] * len(spec.overrides)
    for combo in combos:
        flat = {**plan.base, **combo.values}
        where = {**plan.base_where, **combo.where}
        point = dict(flat)
        for j, ov in enumerate(spec.overrides):
            when, _ = _flatten(ov.when, ("overrides", j, "when"))
            if _matches(when, point):
                used[j] = True
                sets, swhere = _flatten(ov.set, ("overrides", j, "set"))
                flat.update(sets)
                where.update(swhere)
        flat.update(combo.sampled)  # a search's draw (after overrides, before the budget)
        where.update(combo.sampled_where)
        flat.update(plan.overlay)
        where.update(plan.overlay_where)
        raw = flat.pop("seeds_per_trial", 1)
        per_trial = _seeds_per_trial(raw, len(plan.seeds))
        if per_trial is None:
            problem(
                _origin("seeds_per_trial", where),
                "must be a positive number of seeds "
                f"trained together in one trial, or 'vectorized' (all the seeds), got {raw!r}",
            )
            continue
        first = plan.seeds[:per_trial]
        flat.update(seed=first[0], seeds_per_trial=len(first))
        if len(first) > 1:
            flat["seeds"] = first
        try:
            cfg = build_config(flat).to_dict()
        except ConfigError as err:
            for key, msg in err.problems:
                problem(_origin(key, where), _hint(key, msg))
            continue
        resolved.append((combo, cfg, per_trial))
    if budget is None:
        for j, u in enumerate(used):
            if not u:
                when, _ = _flatten(spec.overrides[j].when, ())
                problem(("overrides", j, "when"), f"matches no combination ({_brief(when)})")
    return resolved


def _name_trials(
    spec: SweepSpec,
    plan: _Plan,
    resolved: list[tuple[_Combo, dict[str, Any], int]],
    problem: _Report,
) -> tuple[list[str], list[Trial]]:
    """The keys that vary across combinations, and the trials: one per combination and chunk of
    seeds, named ``t<group>_<varying values>[_r<draw>]_s<seeds>``; a combination that repeats
    another's config is a problem, not a second trial."""
    from agent.config import flatten

    seeds = plan.seeds
    flats = [flatten(cfg) for _, cfg, _ in resolved]
    candidates = list(dict.fromkeys([*plan.grid, *(k for c, _, _ in resolved for k in c.values)]))
    varying = [k for k in candidates if len({_hashable(f.get(k)) for f in flats}) > 1]
    width = max(3, len(str(len(resolved) - 1)))
    trials: list[Trial] = []
    seen: dict[str, str] = {}
    for i, ((combo, cfg, per_trial), flat) in enumerate(zip(resolved, flats)):
        group = f"t{i:0{width}d}"
        values = {k: flat.get(k) for k in varying}
        fingerprint = repr(sorted((k, _hashable(v)) for k, v in flat.items()))
        if combo.draw is not None:  # random search draws with replacement: repeats are trials
            fingerprint += f"|draw {combo.draw}"
        if fingerprint in seen:
            first = next(iter(combo.where.values()), ("grid",))
            problem(
                first[:2] if first[0] == "include" else ("grid",),
                f"combination {group} ({_brief(values)}) repeats {seen[fingerprint]}: "
                "the same config twice",
            )
            continue
        seen[fingerprint] = group
        label = " ".join(_slug(v) for v in values.values()) or spec.name
        stem = "_".join([group, *(_slug(v) for v in values.values())])
        if combo.draw is not None:  # r<i>: the i-th sampled configuration of its combination
            label, stem = f"{label} r{combo.draw}", f"{stem}_r{combo.draw}"
            values = {**values, **{k: flat.get(k) for k in combo.sampled}}
        for j in range(0, len(seeds), per_trial):
            chunk = seeds[j : j + per_trial]
            suffix = f"_s{seeds_text(chunk)}"
            trial_id = stem[: MAX_ID_LEN - len(suffix)].rstrip("_.-") + suffix
            config = {**cfg, "seed": chunk[0], "seeds_per_trial": len(chunk)}
            config.pop("seeds", None)
            if len(chunk) > 1:
                config["seeds"] = list(chunk)
            trials.append(Trial(trial_id, group, label, list(chunk), values, config, combo.draw))
    return varying, trials


def _seeds_per_trial(value: Any, n_seeds: int) -> int | None:
    """``seeds_per_trial`` of a combination -> seeds per trial (None if invalid)."""
    if value == "vectorized":
        return n_seeds
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return min(value, n_seeds)
    return None


def _hint(key: str, msg: str) -> str:
    """'sac.total_steps: unknown key' -> ...; did you mean 'total_steps' (a top-level key)?"""
    from agent.config import TrialConfig

    last = key.rsplit(".", 1)[-1]
    if (
        msg.startswith("unknown key")
        and "did you mean" not in msg
        and "." in key
        and last in TrialConfig.model_fields
    ):
        return f"unknown key; did you mean '{last}' (a top-level key)?"
    return msg


def _matches(partial: dict[str, Any], point: dict[str, Any]) -> bool:
    return all(k in point and _hashable(point[k]) == _hashable(v) for k, v in partial.items())


def _hashable(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    return v


def _origin(key: str, where: dict[str, tuple]) -> tuple:
    """The YAML path that set dotted config ``key`` (or the closest), else ``base``."""
    if key in where:
        return where[key]
    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:n]) in where:
            return where[".".join(parts[:n])]
    below = [w for k, w in where.items() if k.startswith(key + ".")]
    if below:
        return below[0]
    return ("base", key)


def _brief(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _slug(v: Any) -> str:
    if isinstance(v, float):
        text = f"{v:g}"
    elif isinstance(v, (list, tuple)):
        text = "-".join(_slug(x) for x in v)
    elif isinstance(v, dict):
        text = "-".join(f"{k}{_slug(x)}" for k, x in v.items())
    else:
        text = str(v)
    text = (
        re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")
        if not isinstance(v, str)
        else re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-")
    )
    return text[:MAX_VALUE_LEN] or "x"


# --- random search (``search:``) ---------------------------------------------------------------
#
#     search:
#       samples: 16                # configurations drawn per combination (grid cell or include)
#       seed: 0                    # seed of the draws
#       draws: shared              # shared: draw r of a key uses the same random numbers in every
#                                  # combination: the same value where the distribution is the
#                                  # same, the same quantile where its bounds differ (so
#                                  # configuration r is one setting across envs, as a cross-env
#                                  # sensitivity needs); per_cell: the combination's values seed
#                                  # its draws too (independent searches)
#       space:                     # every combination: dotted key -> distribution
#         sac.lr: loguniform(1.0e-4, 3.0e-3)
#       scoped:                    # only the combinations matching `when` (after `space`, in
#         - when: {agent: ppo}     # file order: a later entry's key wins)
#           space:
#             ppo.minibatch_size: choice([64, 128, 256])
#             ppo.n_steps: int(256, 2048)
#             ppo.ent_coef: uniform(0.0, 0.01)
#
# Each combination with a non-empty space becomes ``samples`` configurations (trial ids end in
# ``_r<i>_s<seed>``); every seed of a configuration trains its values (paired seeds). A
# combination whose space is empty runs once, as without a search. The draws are made when the
# file is expanded, from a generator seeded by (seed, i, key), so ``--dry-run``
# lists them, ``--resume`` finds the same trials, and the first k draws of ``samples: N`` are the
# draws of ``samples: k`` (a budget's ``search.samples: 4`` runs a prefix of the full search).
# Sampled values come after ``overrides`` and before the budget's trial keys; a key cannot be
# both searched and a grid axis, an include key or a budget's trial key. Floats are drawn to 4
# significant digits, ints inclusive of both bounds.

DISTRIBUTIONS = {
    "loguniform": "loguniform(a, b): log-uniform on [a, b], 0 < a < b (learning rates)",
    "uniform": "uniform(a, b): uniform on [a, b], a < b",
    "int": "int(a, b): an integer from a to b inclusive, a < b",
    "choice": "choice([x, y, ...]): one of two or more values (lists, strings and numbers)",
}
_DIST_FORMS = "loguniform(a, b), uniform(a, b), int(a, b) or choice([x, y, ...])"
_NOT_SEARCHABLE = ("seed", "seeds", "seeds_per_trial")


@dataclass(frozen=True)
class Distribution:
    """One parsed distribution of a ``search:`` space."""

    kind: str  # a DISTRIBUTIONS key
    args: tuple  # (low, high) or (options,)

    @property
    def text(self) -> str:
        """Canonical text, e.g. ``loguniform(0.0001, 0.003)`` (sweep_resolved.json)."""
        if self.kind == "choice":
            return f"choice({json.dumps(list(self.args[0]))})"
        return f"{self.kind}({self.args[0]!r}, {self.args[1]!r})"

    def draw(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            options = self.args[0]
            return copy.deepcopy(options[rng.randrange(len(options))])
        low, high = self.args
        if self.kind == "int":
            return rng.randint(low, high)
        if self.kind == "loguniform":
            x = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            x = rng.uniform(low, high)
        return min(max(float(f"{x:.4g}"), low), high)


def parse_distribution(value: Any) -> Distribution:
    """``"loguniform(1e-4, 3e-3)"`` -> Distribution; a ValueError saying what to write else."""
    from init_schemes import suggest

    if not isinstance(value, str):
        hint = "; for a fixed list of values use the grid" if isinstance(value, list) else ""
        raise ValueError(f"must be a distribution, {_DIST_FORMS}, got {value!r}{hint}")
    match = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*", value, re.S)
    if not match:
        cut = re.fullmatch(r"\s*[A-Za-z_]\w*\s*\([^)]*", value)
        hint = (
            "; inside a {...} mapping YAML splits it at the comma: quote it, e.g. "
            '{sac.lr: "loguniform(1.0e-4, 3.0e-3)"}'
            if cut
            else ""
        )
        raise ValueError(f"must be a distribution, {_DIST_FORMS}, got {value!r}{hint}")
    name, inner = match.groups()
    if name not in DISTRIBUTIONS:
        raise ValueError(
            f"unknown distribution '{name}'{suggest(name, list(DISTRIBUTIONS))} "
            f"(known: {_DIST_FORMS})"
        )
    try:
        from ruamel.yaml import YAML

        args = YAML(typ="safe", pure=True).load(f"[{inner}]")
    except Exception:  # any YAML error: the arguments are not a list of values
        raise ValueError(
            f"cannot read the arguments of {value!r}: write {DISTRIBUTIONS[name]}"
        ) from None
    usage = f"{value!r}: write {DISTRIBUTIONS[name]}"
    if name == "choice":
        if len(args) != 1 or not isinstance(args[0], list):
            raise ValueError(f"{usage}; the options go in one list")
        if len(args[0]) < 2:
            raise ValueError(f"{usage}; a single value is a base (or overrides) setting")
        return Distribution(name, (tuple(args[0]),))
    if len(args) != 2:
        raise ValueError(f"{usage}; got {len(args)} argument{'s' * (len(args) != 1)}")
    if name == "int":
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            raise ValueError(f"{usage}; the bounds must be integers")
    elif not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ValueError(f"{usage}; the bounds must be numbers")
    low, high = args if name == "int" else (float(args[0]), float(args[1]))
    if not low < high:
        raise ValueError(f"{usage}; the low bound must be below the high one")
    if name == "loguniform" and low <= 0:
        raise ValueError(f"{usage}; the bounds must be positive")
    return Distribution(name, (low, high))


def _budget_search(
    spec: SweepSpec, key: str, value: Any, where: tuple, problem: Any
) -> dict[str, int]:
    """A budget's ``search.samples`` / ``search.seed`` (or ``search: {samples: 4}``)."""
    from init_schemes import suggest

    if spec.search is None:
        problem(where, "this sweep has no `search:` block whose samples or seed a budget could set")
        return {}
    if key == "search":
        if not isinstance(value, dict) or not value:
            problem(where, f"must be a mapping such as {{samples: 4}}, got {value!r}")
            return {}
        items = [(k, v, (*where, k)) for k, v in value.items()]
    else:
        items = [(key.removeprefix("search."), value, where)]
    out = {}
    for name, v, at in items:
        if name not in ("samples", "seed"):
            problem(
                at,
                f"unknown key{suggest(name, ['samples', 'seed'])} (a budget sets "
                "search.samples or search.seed)",
            )
        elif isinstance(v, bool) or not isinstance(v, int) or v < (name == "samples"):
            problem(
                at,
                f"must be {'a positive' if name == 'samples' else 'a non-negative'} "
                f"integer, got {v!r}",
            )
        else:
            out[name] = v
    return out


def _search_space(
    space: dict[str, Any], at: tuple, grid: dict[str, list[Any]], problem: Any
) -> dict[str, tuple[Distribution, tuple]]:
    """A ``space`` mapping -> dotted key -> (distribution, YAML path); problems for bad entries."""
    flat, where = _flatten(space, at)
    out = {}
    split = False  # a distribution cut at its comma by a {...} mapping: skip the other half
    for key, value in flat.items():
        if split and value is None and key.endswith(")"):
            continue
        if key in _NOT_SEARCHABLE:
            problem(
                where[key],
                f"'{key}' cannot be searched (seeds come from the top-level "
                "`seeds` key, and every seed of a configuration shares its draw)",
            )
            continue
        if key in grid:
            problem(
                where[key],
                f"'{key}' is a grid key: a key is either searched or a grid axis, not both",
            )
            continue
        try:
            out[key] = (parse_distribution(value), where[key])
        except ValueError as err:
            split = split or "quote it" in str(err)
            problem(where[key], str(err))
    return out


def _sample_combos(
    search: Search,
    budget_search: dict[str, int],
    combos: list[_Combo],
    base: dict[str, Any],
    grid: dict[str, list[Any]],
    overlay: dict[str, Any],
    budget: str | None,
    problem: Any,
) -> tuple[list[_Combo], dict[str, Any]]:
    """Each combination with a search space -> ``samples`` combinations holding their draws.

    Returns the combinations and the search's record for sweep_resolved.json."""
    samples = budget_search.get("samples", search.samples)
    seed = budget_search.get("seed", search.seed)
    common = _search_space(search.space, ("search", "space"), grid, problem)
    scoped = []
    for j, entry in enumerate(search.scoped):
        when, _ = _flatten(entry.when, ())
        scoped.append(
            (when, _search_space(entry.space, ("search", "scoped", j, "space"), grid, problem))
        )
    for key, (_, at) in [*common.items(), *(i for _, s in scoped for i in s.items())]:
        if key in overlay:
            problem(
                at,
                f"'{key}' is searched here and set by budget '{budget}': a budget "
                "cannot set a searched key",
            )
    used = [False] * len(scoped)
    out: list[_Combo] = []
    distributions: dict[str, list[str]] = {}
    for combo in combos:
        point = {**base, **combo.values}
        space = dict(common)
        for j, (when, entry) in enumerate(scoped):
            if _matches(when, point):
                used[j] = True
                space.update(entry)
        clash = [k for k in space if k in combo.values]
        for key in clash:
            problem(
                space[key][1],
                f"'{key}' is searched and also set by "
                f"{_show(combo.where[key])}: a key is either searched or set",
            )
        if not space or clash:
            out.append(combo)
            continue
        cell = "" if search.draws == "shared" else _brief(combo.values)
        for key, (dist, _) in space.items():
            distributions.setdefault(key, [])
            if dist.text not in distributions[key]:
                distributions[key].append(dist.text)
        for r in range(samples):
            drawn = {
                k: d.draw(random.Random(f"{seed}|{r}|{k}|{cell}")) for k, (d, _) in space.items()
            }
            out.append(
                _Combo(combo.values, combo.where, r, drawn, {k: at for k, (_, at) in space.items()})
            )
    if budget is None:
        for j, u in enumerate(used):
            if not u:
                problem(
                    ("search", "scoped", j, "when"),
                    f"matches no combination ({_brief(scoped[j][0])})",
                )
    record = {
        "samples": samples,
        "seed": seed,
        "draws": search.draws,
        "distributions": distributions,
    }
    return out, record
