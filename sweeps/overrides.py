"""``key=value`` command-line overrides: values are parsed as YAML scalars or flow lists."""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError


class OverrideError(ValueError):
    pass


def parse_value(text: str) -> Any:
    try:
        value = YAML(typ="safe", pure=True).load(text)
    except YAMLError:
        return text
    return text if value is None and text.strip() not in ("null", "~") else value


def parse_overrides(args: list[str], multi: bool = False) -> dict[str, Any]:
    """['a.b=1', 'c=x,y'] -> {'a.b': 1, 'c': 'x,y'} (or ['x', 'y'] with ``multi``)."""
    out: dict[str, Any] = {}
    for arg in args:
        if "=" not in arg:
            raise OverrideError(f"override '{arg}' is not of the form key=value")
        key, text = arg.split("=", 1)
        if not key:
            raise OverrideError(f"override '{arg}' has an empty key")
        if multi and "," in text and not text.lstrip().startswith("["):
            out[key] = [parse_value(t) for t in text.split(",")]
        else:
            out[key] = parse_value(text)
    return out


def parse_or_exit(parser, args: list[str], option: str = "--set") -> dict[str, Any]:
    """``parse_overrides(args)`` for a script's argparse option: a bad override is reported as
    the parser's usage error (one line, exit 2)."""
    try:
        return parse_overrides(args)
    except OverrideError as err:
        parser.error(f"{option}: {err}")
