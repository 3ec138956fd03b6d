"""The ``sweep`` command line.

Help is fast: this module imports only argparse, and a subcommand's module (the Ray runner, the
report, the agents and torch) is imported when that subcommand runs, or when its own ``--help``
needs its arguments. Bad input exits with status 2 and a one-line message per problem, never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

EXIT_USAGE = 2

DESCRIPTION = "Deep-RL ablations from one YAML file: train, sweep, evaluate and report."
EPILOG = """\
commands:
  sweep train agent=sac env=Pendulum-v1 seed=0     train one trial (no Ray)
  sweep run init_ablation.yaml --budget quick      run a sweep file on Ray Tune
  sweep validate FILE                              check a sweep file, run nothing
  sweep status DIR                                 trials of a sweep directory by state
  sweep report DIR                                 statistics, figures, report.md/html
  sweep eval TRIAL_DIR --episodes 10 --video a.mp4 replay a trained policy
  sweep keys agent=ppo                             every config key: type, default, meaning
  sweep list [agents|envs|inits|scenarios|activations]
  sweep diagnose agent=sac init.scheme=fanin,orthogonal seeds=20

Run 'sweep COMMAND --help' for a command's options. --import MODULE (before or after the
command) registers your own init schemes, agents or envs first.
"""

RUN_DESCRIPTION = """\
Run every trial of a sweep file on Ray Tune (one CPU each), with a live view of done, running,
pending and failed trials. Results go to the storage directory (default results/<name>), one
folder per trial. An existing sweep directory is never overwritten: --resume continues it,
--force starts over.

To run on a Ray cluster, start Ray on every machine and pass --address (auto, HEAD_IP:6379 or
ray://HEAD_IP:10001) with a --storage directory that every node can write."""

#: subcommands defined in other modules: name -> (module with add_subcommand, one-line help)
LAZY = {
    "run": ("sweeps.runner", "run a sweep file on Ray Tune"),
    "validate": ("sweeps.runner", "check a sweep file and run nothing"),
    "status": ("sweeps.runner", "trials of a sweep directory by state"),
    "report": ("analysis.report_cli", "statistics, figures, report.md/html of a sweep directory"),
}


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("initablate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _registries() -> dict:
    """Every registry by kind. The in-tree entries are declared by name (torch-free): listing
    them imports no agent, network or scheme module."""
    from agent.common.activations import activations
    from agent.common.envs import envs
    from agent.registry import agents
    from init_schemes import scenarios, schemes

    return {
        "agents": agents,
        "envs": envs,
        "inits": schemes,
        "scenarios": scenarios,
        "activations": activations,
    }


def import_user_modules(modules: list[str]) -> None:
    """Import modules that register init schemes, agents or envs (``--import`` / ``imports:``)."""
    for name in modules:
        if name.endswith(".py") or "/" in name:
            path = Path(name)
            if not path.exists():
                raise CLIError(f"--import {name}: file not found")
            sys.path.insert(0, str(path.resolve().parent))
            name = path.stem
        elif "" not in sys.path and "." not in sys.path:
            sys.path.insert(0, "")  # the working directory, as `python -m` would
        try:
            importlib.import_module(name)
        except Exception as err:
            raise CLIError(f"--import {name}: {type(err).__name__}: {err}") from err


# --- commands defined here ----------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    regs = _registries()
    kinds = [args.kind] if args.kind else list(regs)
    for kind in kinds:
        if kind not in regs:
            from initablate.registry import suggest

            raise CLIError(
                f"unknown registry '{kind}'{suggest(kind, list(regs))} (known: {', '.join(regs)})"
            )
        print(f"{kind}:")
        for name, description in regs[kind].listing():
            print(f"  {name:<20} {description}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from agent.config import config_keys
    from sweeps.overrides import parse_overrides

    values = parse_overrides(args.filters)
    unknown = sorted(set(values) - {"agent"})
    if unknown:
        raise CLIError(f"'{unknown[0]}': sweep keys takes only agent=NAME")
    rows = config_keys(values.get("agent"))
    if args.grep:
        rows = [r for r in rows if args.grep.lower() in (r.key + " " + r.description).lower()]
    width = max(len(r.key) for r in rows) if rows else 0
    twidth = max(len(r.type) for r in rows) if rows else 0
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            print(f"{section}:" if section else "trial:")
        print(f"  {r.key:<{width}}  {r.type:<{twidth}}  {r.default:<10}  {r.description}".rstrip())
    if values.get("agent"):
        from agent.presets import names

        entries = names(values["agent"])
        if entries:
            print(
                f"\npresets of {values['agent']} (agent/presets/{values['agent']}.yaml, applied "
                f"under your keys; preset=none turns them off): {', '.join(entries)}"
            )
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from sweeps.diagnose import run_diagnose
    from sweeps.overrides import parse_overrides

    values = parse_overrides(args.overrides, multi=True)
    seeds, states = (
        _count_option(values, key, default) for key, default in (("seeds", 20), ("states", 1000))
    )
    out = Path(args.out)
    path = run_diagnose(values, seeds, out, states)
    import pandas as pd

    table = pd.read_csv(path)
    keys = [c for c in table.columns if "." in c]
    summary = table.groupby(keys or ["action_dim"])[
        ["coverage", "clip_frac", "entropy", "mean_abs_mean", "std", "critic_scale"]
    ].mean()
    print(summary.round(3).to_string())
    print(f"\nwrote {path} and {out / 'init_action_histograms.png'}")
    return 0


def _count_option(values: dict, key: str, default: int) -> int:
    """A positive integer option given as key=value (``seeds=20``), popped from ``values``."""
    value = values.pop(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CLIError(f"{key}={value}: {key} must be a positive integer, e.g. {key}={default}")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    from agent import build_config, run_trial
    from sweeps.overrides import parse_overrides
    from sweeps.trialdir import METRICS_FILE, has_checkpoint

    cfg = build_config(parse_overrides(args.overrides))
    out = Path(args.out or f"runs/{cfg.agent}_{cfg.env}_seed{cfg.seed}")
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; give a directory for the trial's results")
    if args.resume and (out / METRICS_FILE).exists() and not has_checkpoint(out):
        raise CLIError(
            f"{out} holds a run but no checkpoint to resume from (was it run with "
            "checkpoint_every=0?); nothing was changed. --force starts it over"
        )
    if (out / METRICS_FILE).exists() and not args.resume:
        if not args.force:
            raise CLIError(
                f"{out} already holds a run; pass --resume to continue it or --force to start over"
            )
        import shutil

        shutil.rmtree(out)
    if getattr(cfg, "preset", "none") != "none":
        print(
            f"preset: {cfg.agent} on {cfg.preset} (agent/presets/{cfg.agent}.yaml); "
            "keys you set win, preset=none turns it off"
        )
    from agent.trial import ResumeMismatch, TrialInterrupted

    try:
        rows = run_trial(cfg, out, progress=True)
    except ResumeMismatch as err:
        raise CLIError(str(err)) from None
    except TrialInterrupted as err:  # checkpointed at its last evaluation: resumable
        again = " ".join(["sweep", "train", *args.overrides, "--out", str(out), "--resume"])
        print(
            f"sweep train: {err}; {out} holds everything up to env step "
            f"{err.env_steps:,}. Continue with: {again}",
            file=sys.stderr,
        )
        return 130
    last = [r for r in rows if r["env_step"] == rows[-1]["env_step"]]  # one row per seed
    returns = ", ".join(f"{r['eval/return']:.1f}" for r in last)
    seeds = ", ".join(str(r["seed"]) for r in last)
    print(
        f"finished {cfg.agent} on {cfg.env}, seed{'s' if len(last) > 1 else ''} {seeds}: "
        f"eval/return {returns} at {last[0]['env_step']} env steps; results in {out}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from sweeps.evaluate import cmd_eval as run

    return run(args)


# --- the parser -----------------------------------------------------------------------------------


def _own_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "list",
        help="list registry entries",
        description="List the names you can use in configs, with a line each.",
    )
    s.add_argument(
        "kind", nargs="?", help="agents, envs, inits, scenarios or activations (default: all)"
    )
    s.set_defaults(func=cmd_list)

    s = sub.add_parser(
        "keys",
        help="every config key with its type, default and meaning",
        description="List the trial config keys you can set (sweep train "
        "key=value, a sweep file's base/grid): type, default and description.",
        epilog="Example: sweep keys agent=ppo (the top-level and init keys, then "
        "every section a ppo trial reads).",
    )
    s.add_argument(
        "filters",
        nargs="*",
        metavar="agent=NAME",
        help="only the keys a trial of this agent reads (default: every agent)",
    )
    s.add_argument("--grep", metavar="TEXT", help="only keys whose name or description has TEXT")
    s.set_defaults(func=cmd_keys)

    s = sub.add_parser(
        "diagnose",
        help="init exploration diagnostics of initial policies",
        description="Measure initial policies (no training): per action "
        "dimension a histogram, coverage, clip fraction, entropy; a table, "
        "init_diagnostics.csv and init_action_histograms.png.",
    )
    s.add_argument(
        "overrides",
        nargs="*",
        help="key=value (comma-separated values: one panel "
        "each), e.g. agent=sac env=Pendulum-v1 init.scheme=fanin,orthogonal seeds=20",
    )
    s.add_argument("--out", default="runs/diagnose", help="output directory")
    s.set_defaults(func=cmd_diagnose)

    s = sub.add_parser(
        "train",
        help="train one trial without Ray",
        description="Train one trial and write the files a sweep trial writes "
        "(config.json, metrics.csv, TensorBoard events, policy.pt, ...). The "
        "agent's tuned preset for the env applies under the keys you set.",
        epilog="Example: sweep train agent=ppo env=Walker2d-v5 seed=0 "
        "total_steps=200000 --out runs/ppo_walker. 'sweep keys agent=ppo' lists "
        "the keys; preset=none turns the preset off.",
    )
    s.add_argument("overrides", nargs="*", help="key=value, e.g. agent=sac seed=0 sac.lr=1e-3")
    s.add_argument("--out", help="output directory (default runs/<agent>_<env>_seed<seed>)")
    s.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    s.add_argument("--force", action="store_true", help="delete an existing run and start over")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser(
        "eval",
        help="replay a trained policy: returns, optionally a video",
        description="Load a trial's final policy (policy.pt) and run episodes "
        "on a fresh env; print the mean +- std return.",
        epilog="Example: sweep eval runs/ppo_walker --episodes 10 --video walk.mp4",
    )
    s.add_argument(
        "trial",
        metavar="TRIAL_DIR",
        help="a trial directory (sweep train --out, or <sweep>/trials/<trial_id>)",
    )
    s.add_argument("--episodes", type=int, default=10, metavar="N", help="episodes (default 10)")
    s.add_argument(
        "--seed", type=int, default=0, metavar="S", help="seed of the eval env (default 0)"
    )
    s.add_argument(
        "--stochastic",
        action="store_true",
        help="sample actions instead of the deterministic (mean) action",
    )
    s.add_argument("--video", metavar="FILE", help="write the first episode as FILE (.mp4 or .gif)")
    s.set_defaults(func=cmd_eval)


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (skipping global options and their values)."""
    names = {"list", "keys", "diagnose", "train", "eval", *LAZY}
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == "--import":
            skip = True
        elif token in names:
            return token
    return None


def build_parser(command: str | None = "all") -> argparse.ArgumentParser:
    """The ``sweep`` parser. ``command`` names the subcommand whose module-defined arguments
    are loaded (``"all"``: every one; None: none, the other commands get their help line only).
    """
    p = argparse.ArgumentParser(
        prog="sweep",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"sweep (initablate) {version()}")
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="module (or .py file) registering init schemes, agents or envs; may be repeated",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _own_commands(sub)
    wanted = (
        set(dict.fromkeys(m for m, _ in LAZY.values()))
        if command == "all"
        else {LAZY[command][0]}
        if command in LAZY
        else set()
    )
    loaded: set[str] = set()
    for module in dict.fromkeys(m for m, _ in LAZY.values()):
        if module in wanted:
            before = set(sub.choices)
            try:
                mod = importlib.import_module(module)
            except Exception as err:  # never drop a command silently
                names = ", ".join(n for n, (m, _) in LAZY.items() if m == module)
                raise CLIError(
                    f"cannot load '{names}' ({module}): {type(err).__name__}: {err}"
                ) from err
            mod.add_subcommand(sub)
            loaded |= set(sub.choices) - before
    for name, (_, help_line) in LAZY.items():
        if name not in sub.choices:  # its help line now; its arguments when it is the command
            sub.add_parser(name, help=help_line)
    if "run" in loaded:
        sub.choices["run"].description = RUN_DESCRIPTION
        sub.choices["run"].epilog = None
    for parser in sub.choices.values():  # global flags work after the command too
        parser.add_argument(
            "--import",
            dest="sub_imports",
            action="append",
            default=[],
            metavar="MODULE",
            help="as 'sweep --import MODULE' (may be repeated)",
        )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    try:
        parser = build_parser(command)
    except CLIError as err:
        print(f"sweep {command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    imports = [*args.imports, *getattr(args, "sub_imports", [])]
    try:
        from agent.config import ConfigError
        from agent.presets import PresetError
        from initablate.registry import RegistryError

        known: tuple[type[BaseException], ...] = (
            CLIError,
            RegistryError,
            ConfigError,
            PresetError,
            ValueError,
            FileNotFoundError,
        )
    except ImportError:  # pragma: no cover  (a broken install: report it as it is)
        known = (CLIError, ValueError, FileNotFoundError)
    try:
        import_user_modules(imports)
        return int(args.func(args) or 0)
    except known as err:
        for line in str(err).splitlines() or [type(err).__name__]:
            print(f"sweep {args.command}: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # a run that failed: the trial files say where it stopped
        from agent.common.envs import EnvError
        from agent.trial import TrialError

        if not isinstance(err, EnvError | TrialError):
            raise
        print(f"sweep {args.command}: failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # python -m sweeps.cli: run the importable module's main, so
    from sweeps.cli import main as _main  # CLIError raised by other modules is the same class

    sys.exit(_main())
