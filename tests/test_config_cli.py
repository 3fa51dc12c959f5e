"""``recon config show NAME``: every field with type, default, range and doc, read from the config classes."""

from __future__ import annotations

import dataclasses
import json

import pytest
import typer
from recon_apps.config_cli import config_names, register
from typer.testing import CliRunner

from recon.errors import ConfigError
from recon.registry import backends, get_backend


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def root() -> None:
        """A root so that ``config`` is a sub-command, as in ``recon``."""

    return app


def show(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, ["config", "show", *args])


@pytest.mark.parametrize("name", sorted(backends()))
def test_json_lists_every_field_of_the_backend_config(app, name):
    res = show(app, name, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    cls = get_backend(name).config_class()
    assert [f["name"] for f in out["fields"]] == [f.name for f in dataclasses.fields(cls)]
    defaults = dataclasses.asdict(cls())
    for f in out["fields"]:
        assert f["doc"] and "\n" not in f["doc"], f["name"]
        assert f["default"] == (list(defaults[f["name"]]) if isinstance(defaults[f["name"]], tuple)
                                else defaults[f["name"]])


def test_text_shows_type_default_range_and_doc(app):
    res = show(app, "kernel")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "kernel: recon.backends.kernel.config.KernelConfig"
    i = next(i for i, ln in enumerate(lines) if ln.startswith("threads:"))
    assert lines[i] == "threads: int | None = null    range 0..256"
    assert lines[i + 1].startswith("    torch intra-op threads")
    assert "preconditioner: 'auto' | 'jacobi' | 'multilevel' = \"auto\"" in lines


def test_normals_and_batch(app):
    normals = json.loads(show(app, "normals", "--json").stdout)
    k = next(f for f in normals["fields"] if f["name"] == "k")
    assert (k["type"], k["default"], k["range"]) == ("int | None", None, "3..200")
    batch = json.loads(show(app, "batch", "--json").stdout)
    rows = {f["name"]: f for f in batch["fields"]}
    assert rows["workers"]["range"] == "1..1024" and rows["workers"]["default"] == 2
    assert rows["tile_size"]["range"] == "> 0, <= 1e+12"
    assert all(f["doc"] for f in batch["fields"])


def test_unknown_name_is_one_line_listing_the_names(app):
    res = show(app, "kernal")
    assert isinstance(res.exception, ConfigError) and res.exception.exit_code == 2
    msg = str(res.exception)
    assert "\n" not in msg and "unknown config 'kernal'" in msg
    assert all(name in msg for name in config_names()) and {"normals", "batch"} <= set(config_names())
