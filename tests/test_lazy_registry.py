"""Torch-free config core (issue 24): configs and sweep files validate without torch, Ray or
seaborn; agents, init schemes and activations are declared by name and load on first use; the
`sweep` CLI reports a subcommand whose module cannot be imported instead of dropping it."""

import subprocess
import sys
import textwrap

import pytest

from agent.registry import IN_TREE, agents
from initablate.registry import Registry, RegistryError

HEAVY = ("torch", "ray", "seaborn")


def run_python(code: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_configs_and_sweep_files_validate_without_torch_ray_or_seaborn():
    out = run_python(f"""
        import sys

        def heavy():
            return sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))

        import agent.config
        from agent.config import ConfigError, TrialConfig, build_config
        from initablate.registry import Registry
        assert heavy() == [], heavy()
        for name in ["sac", "ppo", "td3", "world_model", "dreamer", "mb_ppo", "mb_sac"]:
            build_config({{"agent": name, "init.scheme": "orthogonal"}})
        for bad in ({{"sac.activation": "rleu"}}, {{"init.scheme": "orthogonl"}},
                    {{"agent": "sacc"}}, {{"mb_ppo.return_estimator": "gea"}}):
            try:
                build_config(bad)
            except ConfigError:
                pass
            else:
                raise AssertionError(bad)
        from agent.config import config_keys
        assert config_keys()
        from sweeps.schema import load_sweep
        sweep = load_sweep("sweeps/init_ablation.yaml")
        assert sweep.trials and isinstance(sweep.trials[0].config, dict)
        TrialConfig(**{{k: v for k, v in sweep.trials[0].config.items() if k != "sac"}})
        import sweeps.cli
        sweeps.cli.build_parser("validate")
        assert heavy() == [], heavy()
        print("ok")
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_unknown_agent_suggests_and_a_known_one_resolves_to_its_class():
    with pytest.raises(
        RegistryError,
        match=r"unknown agent 'sacc'; did you mean 'sac'\? "
        r"\(known: .*td3",
    ):
        agents.get("sacc")
    with pytest.raises(RegistryError, match="did you mean 'world_model'"):
        agents.info("world_modl")
    cls = agents.get("td3")
    assert cls.__name__ == "TD3" and cls.__module__ == "agent.td3"
    assert agents.is_loaded("td3")


@pytest.mark.parametrize("name", sorted(IN_TREE))
def test_each_declaration_says_what_its_class_says(name):
    """The torch-free declaration in agent/registry.py is what validation reads; it must match
    the class (registration checks config, sections, pixels and devices; this the rest)."""
    module, description, info = IN_TREE[name]
    cls = agents.get(name)
    assert cls.__module__ == module and cls.Config is info.config
    assert agents.description(name) == description
    from agent.common import seed_batch

    assert info.batched == (name in seed_batch.batched_agents)


def test_every_in_tree_agent_is_listed_without_importing_it():
    out = run_python("""
        import sys
        from sweeps.cli import main
        main(["list", "agents"])
        assert "torch" not in sys.modules and "agent.sac" not in sys.modules
    """)
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert names == sorted(IN_TREE)


def test_a_user_agent_registered_eagerly_is_listed_and_validated(tmp_path):
    (tmp_path / "my_agents.py").write_text(
        textwrap.dedent("""
        from pydantic import BaseModel, ConfigDict
        from agent.registry import register

        class EchoConfig(BaseModel):
            model_config = ConfigDict(extra="forbid")
            width: int = 3

        @register("echo", "does nothing, loudly")
        class Echo:
            Config = EchoConfig
            sections = ("echo",)
    """)
    )
    listed = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "--import", "my_agents", "list", "agents"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert "does nothing, loudly" in listed.stdout and "sac " in listed.stdout
    out = run_python(
        """
        import my_agents
        from agent.config import ConfigError, build_config
        assert build_config({"agent": "echo", "echo.width": 5}).echo.width == 5
        try:
            build_config({"agent": "echo", "echo.wdth": 5})
        except ConfigError as err:
            assert "echo.wdth: unknown key; did you mean 'width'" in str(err), err
        else:
            raise AssertionError("no error")
        print("ok")
    """,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr


def test_lazy_registry_declares_loads_and_refuses_duplicates(tmp_path, monkeypatch):
    (tmp_path / "lazy_things.py").write_text(
        textwrap.dedent("""
        from tests_lazy_registry_target import things

        @things.register("widget")
        def widget():
            "a widget"
    """)
    )
    reg: Registry = Registry("thing")
    target = type(sys)("tests_lazy_registry_target")
    target.things = reg
    monkeypatch.setitem(sys.modules, "tests_lazy_registry_target", target)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg.declare("widget", "lazy_things", "declared widget")
    reg.declare("gadget", "lazy_things", "never registered")
    assert "widget" in reg and reg.names() == ["gadget", "widget"]
    assert reg.listing() == [("gadget", "never registered"), ("widget", "declared widget")]
    reg.check("widget")
    with pytest.raises(RegistryError, match="did you mean 'widget'"):
        reg.check("widgt")
    assert "lazy_things" not in sys.modules
    assert reg.get("widget").__name__ == "widget"  # imported now
    assert reg.description("widget") == "declared widget"  # the declaration's word is kept
    with pytest.raises(RegistryError, match="did not register it"):
        reg.get("gadget")
    with pytest.raises(RegistryError, match="already registered"):
        reg.add("widget", object())
    sys.modules.pop("lazy_things", None)


def test_registering_a_declared_name_from_elsewhere_is_a_duplicate():
    """A user scheme named like a built-in one is refused even before torch was imported."""
    out = run_python("""
        import init_schemes
        from initablate.registry import RegistryError
        try:
            init_schemes.register("orthogonal")(lambda t, **_: None)
        except RegistryError as err:
            assert "already registered" in str(err)
            print("ok")
    """)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_old_import_paths_still_work():
    import init_schemes
    from agent.common.networks import Activation, activations, known_activation  # noqa: F401
    from agent.model_based import ModelBasedConfig  # noqa: F401
    from agent.sac import SACConfig
    from init_schemes import RegistryError as Old
    from init_schemes import apply_init, suggest  # noqa: F401

    assert Old is RegistryError and SACConfig is IN_TREE["sac"][2].config
    assert init_schemes.schemes.get("fanin").uses_gain is False
    assert activations.get("elu").__name__ == "ELU"


# --- the CLI: a subcommand whose module cannot be imported -------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "some_dir"],
        ["report", "--help"],
        ["run", "init_ablation.yaml"],
        ["validate", "--help"],
    ],
)
def test_a_command_whose_module_fails_to_import_says_so(argv, monkeypatch, capsys):
    import sweeps.cli as cli

    module = cli.LAZY[argv[0]][0]
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"sweep {argv[0]}: error: cannot load" in err and module in err
    assert "ModuleNotFoundError" in err or "ImportError" in err


def test_help_still_lists_a_command_whose_module_fails_to_import(monkeypatch, capsys):
    import sweeps.cli as cli

    monkeypatch.setitem(sys.modules, "analysis.report_cli", None)
    monkeypatch.setitem(sys.modules, "sweeps.runner", None)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "validate", "status", "report", "train", "list"):
        assert f"    {command} " in out or f"    {command}\n" in out, command
