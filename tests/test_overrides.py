"""``key=value`` overrides: parsing and the one-line usage error of the bench scripts' --set."""

import argparse

import pytest

from sweeps.overrides import OverrideError, parse_or_exit, parse_overrides


def test_values_are_yaml_scalars_and_lists_only_with_multi():
    assert parse_overrides(["sac.lr=3e-4", "sac.bf16=true", "env=Pendulum-v1", "a=x,y"]) == {
        "sac.lr": 3e-4,
        "sac.bf16": True,
        "env": "Pendulum-v1",
        "a": "x,y",
    }
    assert parse_overrides(["a=x,y"], multi=True) == {"a": ["x", "y"]}


@pytest.mark.parametrize("bad", ["foo", "=1"])
def test_a_malformed_override_names_itself(bad, capsys):
    with pytest.raises(OverrideError, match=f"'{bad}'"):
        parse_overrides([bad])
    with pytest.raises(SystemExit) as exit_:
        parse_or_exit(argparse.ArgumentParser(prog="bench"), [bad])
    assert exit_.value.code == 2
    assert f"bench: error: --set: override '{bad}'" in capsys.readouterr().err
