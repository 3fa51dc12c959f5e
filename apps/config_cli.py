"""``recon config show NAME``: every option of a backend, of normal estimation or of a batch job.

Each option is printed with its type, default, allowed range and documentation, all read from the
config dataclass itself (:func:`recon.config.describe_fields`), so the command cannot drift from
the code. :func:`register` adds the ``config`` command group to a typer app.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict
from typing import Any

import typer

from recon.config import FieldInfo, describe_fields, range_text
from recon.errors import ConfigError
from recon.registry import backends as all_backends
from recon.registry import get_backend
from recon.tiling.config import BatchConfig
from recon.tiling.options import RULES, Rule

#: the config names that are not backends
OTHER_CONFIGS = ("normals", "batch")
#: the width of the printed documentation
DOC_WIDTH = 96


def config_names() -> list[str]:
    """The names ``recon config show`` accepts: the registered backends, then "normals" and "batch"."""
    return sorted(all_backends()) + list(OTHER_CONFIGS)


def _batch_range(rule: Rule) -> str:
    """A batch option's range as text (see :class:`recon.tiling.options.Rule`)."""
    if rule.positive:
        return "> 0" if rule.hi is None else f"> 0, <= {rule.hi:g}"
    return range_text(rule.lo, rule.hi)


def config_fields(name: str) -> tuple[type, str, list[FieldInfo]]:
    """(config class, where its options are set, its fields) for a name of :func:`config_names`.

    Raises:
        ConfigError: an unknown name (the error lists the known ones).
    """
    if name == "normals":
        from recon.pipeline import (
            NormalsConfig,  # numpy and the normal estimators: ~0.5 s, only for this name
        )

        return NormalsConfig, "--set normals.NAME=VALUE, or the 'normals:' section of a preset", \
            describe_fields(NormalsConfig)
    if name == "batch":
        ranges = {key: _batch_range(rule) for key, rule in RULES.items()}
        return BatchConfig, "the keys of a job file (configs/batch/), or the `recon batch` options", \
            describe_fields(BatchConfig, ranges)
    if name not in all_backends():
        raise ConfigError(f"unknown config '{name}'", None, f"use one of: {', '.join(config_names())}")
    cls = get_backend(name).config_class()
    return cls, f"--set NAME=VALUE (or {name}.NAME=VALUE), or the '{name}:' section of a preset", describe_fields(cls)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _value(v: Any) -> str:
    """A default as it is written in YAML/JSON (null, true, 0.001, "auto", [1, 2])."""
    return json.dumps(v)


def format_fields(name: str, cls: type, where: str, fields: list[FieldInfo]) -> str:
    """The text ``recon config show`` prints: a header, then per field a line of name, type,
    default and range, and its documentation indented below."""
    lines = [f"{name}: {cls.__module__}.{cls.__qualname__}", f"set with {where}", ""]
    for f in fields:
        head = f"{f.name}: {f.type} = {_value(f.default)}"
        if f.range:
            head += f"    range {f.range}"
        lines.append(head)
        if f.doc:
            lines.append(textwrap.fill(_one_line(f.doc), DOC_WIDTH, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)


def show(
    name: str = typer.Argument(..., help="a backend (see `recon backends`), normals or batch"),
    json_out: bool = typer.Option(False, "--json", help="print the fields as JSON"),
) -> None:
    """Print every option of NAME: type, default, allowed range and what it does."""
    cls, where, fields = config_fields(name)
    if json_out:
        rows = [{**asdict(f), "doc": _one_line(f.doc)} for f in fields]
        typer.echo(json.dumps({"name": name, "class": f"{cls.__module__}.{cls.__qualname__}", "set_with": where,
                               "fields": rows}, indent=1))
        return
    typer.echo(format_fields(name, cls, where, fields))


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group (``recon config show NAME``) to ``app``."""
    group = typer.Typer(help="inspect the configuration options", no_args_is_help=True)
    group.command("show")(show)
    app.add_typer(group, name="config")


__all__ = ["config_fields", "config_names", "format_fields", "register", "show"]
