"""Typed configuration: dataclasses loaded from YAML presets and ``key=value`` overrides.

Every backend has a config dataclass whose defaults are the recommended values. Each field is
documented once, by a string literal right after it (read by :func:`field_docs`); a class may
hold a ``LIMITS`` table of inclusive ranges that its ``__post_init__`` checks with
:func:`check_limits`. :func:`describe_fields` gathers name, type, default, range and doc for
``recon config show``. Configs serialise to plain dicts (:func:`to_dict`) and load back with
:func:`from_dict`, which rejects unknown keys and wrong types with a
:class:`~recon.errors.ConfigError` that names the key.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import itertools
import math
import os
import textwrap
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from recon.errors import ConfigError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (tuples become lists)."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    return conv(cfg)


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, key: str, source: str | None) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, source)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"config key '{key}' has value {value!r}, expected {_type_name(tp)}", source,
                          f"set '{key}' to a value of type {' or '.join(_type_name(a) for a in args)}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"config key '{key}' has value {value!r}, expected one of {_type_name(tp)}", source,
                          f"use one of {_type_name(tp)}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' has value {value!r}, expected a list", source,
                              f"write '{key}' as a list, e.g. [1, 2, 3]")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"config key '{key}' needs {len(args)} values, got {len(value)}", source,
                                  f"give exactly {len(args)} values")
            return tuple(_coerce(v, a, key, source) for v, a in zip(value, args))
        inner = args[0] if args else Any
        out = [_coerce(v, inner, key, source) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping", source, f"write '{key}:' followed by 'name: value' lines")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping of options", source,
                              f"write '{key}:' followed by indented 'name: value' lines")
        return from_dict(tp, value, source=source, prefix=key + ".")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"config key '{key}' has value {value!r}, expected a finite number", source,
                                  f"set '{key}' to a finite number")
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"config key '{key}' has value {value!r}, expected {_type_name(tp)}", source,
                      f"set '{key}' to a {_type_name(tp)}")


def from_dict(cls: type[T], data: dict[str, Any] | None, source: str | None = None, prefix: str = "") -> T:
    """Build the dataclass ``cls`` from a plain dict, checking keys and types.

    Raises:
        ConfigError: an unknown key (with the list of known ones) or a value of the wrong type.
    """
    data = dict(data or {})
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known keys: {', '.join(names)}"
            raise ConfigError(f"unknown config key '{prefix}{k}'", source, hint)
        kwargs[k] = _coerce(v, hints[k], prefix + k, source)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid configuration: {e}", source, "check the values against the documented options")


def check_limits(cfg: Any, limits: dict[str, tuple[float, float]], prefix: str = "") -> None:
    """Refuse a field outside its inclusive [lo, hi] range (None values pass).

    Config classes call this from ``__post_init__`` with their ``LIMITS`` table (the fields that size
    memory, threads or work), so an absurd value is a one-line error before anything is allocated;
    :func:`describe_fields` shows the same table.

    Raises:
        ConfigError: naming the key, its value and the range.
    """
    for name, (lo, hi) in limits.items():
        v = getattr(cfg, name)
        if v is None:
            continue
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi
        if not ok:
            raise ConfigError(f"{prefix}{name} must be in {lo:g}..{hi:g}, got {v!r}", None,
                              f"set {prefix}{name} within that range (default {_default_of(cfg, name)})")


def _default_of(cfg: Any, name: str) -> Any:
    for f in dataclasses.fields(cfg):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return "null" if f.default is None else f.default
            break
    return "see the config's documentation"


#: the most CPU threads a config may ask for (torch crashes on absurd thread counts)
MAX_THREADS = 256


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=3"`` -> (["a", "b"], 3). Values are parsed as YAML scalars/lists."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form key=value", None, "write --set key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{item}' has an empty key", None, "write --set key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # PyYAML reads 1e9 and 1.0e9 as strings (YAML 1.1 wants 1.0e+9)
        try:
            value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            pass
    return key.split("."), value


def set_nested(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for p in path[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            node[p] = nxt
        node = nxt
    node[path[-1]] = value


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML preset with the safe loader; the top level must be a mapping."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ConfigError("config file not found", p, "check the path, or pick a preset from configs/")
    try:
        with open(p, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"not valid YAML ({msg})", p, "fix the YAML syntax")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping of options", p, "write 'key: value' lines")
    return data


def load_config_as(cls: type[T], cfg: str | os.PathLike | dict | T | None,
                   fix: str = "check the path") -> tuple[T, str | None]:
    """A ``cls`` dataclass config from a YAML path, a dict, a ``cls`` instance or None (defaults), and the
    YAML path it came from (None otherwise); used by the training commands.

    Raises:
        ConfigError: a missing file (with ``fix`` as the remedy), bad YAML, unknown keys or bad values.
    """
    if cfg is None:
        return cls(), None
    if isinstance(cfg, cls):
        return cfg, None
    if isinstance(cfg, dict):
        return from_dict(cls, cfg), None
    path = os.fspath(cfg)
    if not os.path.isfile(path):
        raise ConfigError("config file not found", path, fix)
    return from_dict(cls, load_yaml(path), source=path), path


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its documentation: the string literal right after the field in the class body.

    Dataclass bases are read first, so a subclass's literal wins. Fields without one are absent.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # no source (e.g. a class made at run time)
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def type_text(tp: Any) -> str:
    """Readable annotation: ``float | None``, ``'auto' | 'cpu'``, ``list[str]``."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " | ".join(type_text(a) for a in get_args(tp))
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if tp is type(None):
        return "None"
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else type_text(a) for a in get_args(tp))
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{args}]" if args else name
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One config field as ``recon config show`` prints it.

    Attributes:
        name: the key in YAML presets and ``--set``.
        type: the annotation as text.
        default: the default value as plain data (lists, numbers, strings, None, dicts).
        range: the allowed range as text (e.g. ``"1..256"``), "" when the class has none for it.
        doc: the field's documentation (see :func:`field_docs`).
    """

    name: str
    type: str
    default: Any
    range: str
    doc: str


def range_text(lo: float | None, hi: float | None) -> str:
    """``"1..8"``, ``">= 0"``, ``"<= 10"`` or "" for an inclusive range with optional bounds."""
    if lo is not None and hi is not None:
        return f"{lo:g}..{hi:g}"
    if lo is not None:
        return f">= {lo:g}"
    return "" if hi is None else f"<= {hi:g}"


def describe_fields(cls: type, ranges: dict[str, str] | None = None) -> list[FieldInfo]:
    """Name, type, default, range and doc of every init field of the config dataclass ``cls``.

    Args:
        cls: a config dataclass.
        ranges: range text by field name; default: the class's ``LIMITS`` table (none when it has none).
    """
    if ranges is None:
        ranges = {k: range_text(lo, hi) for k, (lo, hi) in getattr(cls, "LIMITS", {}).items()}
    hints = get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append(FieldInfo(f.name, type_text(hints[f.name]), to_dict(default), ranges.get(f.name, ""),
                             docs.get(f.name, "")))
    return out

__all__ = ["MAX_THREADS", "FieldInfo", "check_limits", "describe_fields", "field_docs", "from_dict", "load_yaml",
           "parse_override", "range_text", "set_nested", "to_dict", "type_text", "typing"]
