"""The ``sweep`` command.

    sweep list [KIND]                       registry entries with a line each
    sweep diagnose key=value ...            init exploration diagnostics
    sweep train key=value ... [--out DIR]   one trial, no Ray
    sweep run FILE [--budget NAME] ...      a sweep on Ray Tune
    sweep validate FILE                     check a sweep file, run nothing
    sweep status DIR                        trials by state
    sweep report DIR                        statistics, figures, report.md/html

Bad input exits with status 2 and a one-line message per problem, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

EXIT_USAGE = 2


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def _registries() -> dict:
    import agent  # noqa: F401  (registers the in-tree agents)
    from agent.common.envs import envs
    from agent.common.networks import activations
    from agent.registry import agents
    from init_schemes import scenarios, schemes

    return {"agents": agents, "envs": envs, "inits": schemes, "scenarios": scenarios,
            "activations": activations}


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


def cmd_list(args: argparse.Namespace) -> int:
    regs = _registries()
    kinds = [args.kind] if args.kind else list(regs)
    for kind in kinds:
        if kind not in regs:
            from init_schemes import suggest

            raise CLIError(f"unknown registry '{kind}'{suggest(kind, list(regs))} "
                           f"(known: {', '.join(regs)})")
        print(f"{kind}:")
        for entry in regs[kind].entries():
            print(f"  {entry.name:<20} {entry.description}")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from sweeps.diagnose import run_diagnose
    from sweeps.overrides import parse_overrides

    values = parse_overrides(args.overrides, multi=True)
    seeds, states = (_count_option(values, key, default)
                     for key, default in (("seeds", 20), ("states", 1000)))
    out = Path(args.out)
    path = run_diagnose(values, seeds, out, states)
    import pandas as pd

    table = pd.read_csv(path)
    keys = [c for c in table.columns if "." in c]
    summary = table.groupby(keys or ["action_dim"])[
        ["coverage", "clip_frac", "entropy", "mean_abs_mean", "std", "critic_scale"]].mean()
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

    cfg = build_config(parse_overrides(args.overrides))
    out = Path(args.out or f"runs/{cfg.agent}_{cfg.env}_seed{cfg.seed}")
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; give a directory for the trial's results")
    if (out / "metrics.csv").exists() and not args.resume:
        if not args.force:
            raise CLIError(f"{out} already holds a run; pass --resume to continue it or --force "
                           "to start over")
        import shutil

        shutil.rmtree(out)
    from agent.trial import ResumeMismatch, TrialInterrupted

    try:
        rows = run_trial(cfg, out, progress=True)
    except ResumeMismatch as err:
        raise CLIError(str(err)) from None
    except TrialInterrupted as err:  # checkpointed at its last evaluation: resumable
        again = " ".join(["sweep", "train", *args.overrides, "--out", str(out), "--resume"])
        print(f"sweep train: {err}; {out} holds everything up to env step "
              f"{err.env_steps:,}. Continue with: {again}", file=sys.stderr)
        return 130
    last = [r for r in rows if r["env_step"] == rows[-1]["env_step"]]  # one row per seed
    returns = ", ".join(f"{r['eval/return']:.1f}" for r in last)
    seeds = ", ".join(str(r["seed"]) for r in last)
    print(f"finished {cfg.agent} on {cfg.env}, seed{'s' if len(last) > 1 else ''} {seeds}: "
          f"eval/return {returns} at {last[0]['env_step']} env steps; results in {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweep", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="module (or .py file) registering init schemes, agents or envs")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list registry entries")
    s.add_argument("kind", nargs="?", help="agents, envs, inits, scenarios or activations")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("diagnose", help="init exploration diagnostics of initial policies")
    s.add_argument("overrides", nargs="*", help="key=value (comma-separated values: one panel "
                   "each), e.g. agent=sac env=Pendulum-v1 init.scheme=fanin,orthogonal seeds=20")
    s.add_argument("--out", default="runs/diagnose", help="output directory")
    s.set_defaults(func=cmd_diagnose)

    s = sub.add_parser("train", help="train one trial without Ray")
    s.add_argument("overrides", nargs="*", help="key=value, e.g. agent=sac seed=0 sac.lr=1e-3")
    s.add_argument("--out", help="output directory (default runs/<agent>_<env>_seed<seed>)")
    s.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    s.add_argument("--force", action="store_true", help="delete an existing run and start over")
    s.set_defaults(func=cmd_train)

    for hook in _subcommand_hooks():
        hook(sub)
    return p


def _subcommand_hooks() -> list:
    """Subcommands living in other modules (sweep runner, report)."""
    hooks = []
    for module in ("sweeps.runner", "analysis.report"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, "add_subcommand"):
            hooks.append(mod.add_subcommand)
    return hooks


def main(argv: list[str] | None = None) -> int:
    from agent.config import ConfigError
    from init_schemes import RegistryError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        import_user_modules(args.imports)
        return int(args.func(args) or 0)
    except (CLIError, RegistryError, ConfigError, ValueError, FileNotFoundError) as err:
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


if __name__ == "__main__":
    sys.exit(main())
