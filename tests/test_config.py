"""Typed configs: presets load, unknown keys and wrong types are named in the error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from recon.config import from_dict, load_yaml, parse_override, to_dict
from recon.errors import ConfigError
from recon.pipeline import load_reconstruct_config


@dataclass
class Inner:
    k: int = 3
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    size: float = 1.0
    name: str = "x"
    flag: bool = False
    maybe: int | None = None
    pair: tuple[float, float] = (0.0, 1.0)
    inner: Inner = field(default_factory=Inner)


def test_round_trip_and_int_for_float():
    cfg = from_dict(Outer, {"size": 2, "maybe": 4, "pair": [1, 2], "inner": {"k": 5, "mode": "b"}})
    assert cfg.size == 2.0 and isinstance(cfg.size, float)
    assert cfg.pair == (1.0, 2.0)
    assert cfg.inner == Inner(5, "b")
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "data, key",
    [
        ({"sise": 1.0}, "sise"),
        ({"size": "big"}, "size"),
        ({"flag": 1}, "flag"),
        ({"inner": {"k": 1.5}}, "inner.k"),
        ({"inner": {"mode": "c"}}, "inner.mode"),
        ({"inner": {"zzz": 1}}, "inner.zzz"),
        ({"pair": [1.0]}, "pair"),
    ],
)
def test_bad_keys_and_types_name_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, data, source="preset.yaml")
    msg = str(err.value)
    assert f"'{key}'" in msg and msg.startswith("preset.yaml: ")
    assert "\n" not in msg


def test_unknown_key_suggests_close_match():
    with pytest.raises(ConfigError, match="did you mean 'size'"):
        from_dict(Outer, {"sizee": 1.0})


def test_parse_override_types():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("x=0.5") == (["x"], 0.5)
    assert parse_override("x=true") == (["x"], True)
    assert parse_override("x=[1, 2]") == (["x"], [1, 2])
    assert parse_override("x=hello") == (["x"], "hello")
    assert parse_override("x=1e9") == (["x"], 1e9)  # PyYAML alone gives the string "1e9"
    assert parse_override("x=2.5E-3") == (["x"], 2.5e-3)
    assert parse_override("x=nan") == (["x"], "nan")
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_bad_yaml_and_missing_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("backend: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(p)
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    q = tmp_path / "list.yaml"
    q.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(q)


def test_presets_in_configs_load(repo_root):
    # reconstruction presets name a backend; training configs (e.g. normals-hdfe.yaml) are checked by their
    # trainers and batch jobs (batch.yaml: they list `inputs`) by recon.tiling.config (tests/tiling)
    presets = [p for p in sorted((repo_root / "configs").glob("*.yaml"))
               if "backend" in load_yaml(p) and "inputs" not in load_yaml(p)]
    assert len(presets) >= 2, "configs/ has no reconstruction presets"
    for p in presets:
        cfg, backend_cfg, spec = load_reconstruct_config(str(p))
        assert cfg.backend == spec.name
        assert to_dict(backend_cfg) == cfg.backend_options


def test_reconstruct_config_overrides(repo_root):
    cfg, bcfg, spec = load_reconstruct_config(str(repo_root / "configs/poisson.yaml"), ["depth=9", "normals.k=30"])
    assert spec.name == "poisson" and bcfg.depth == 9 and cfg.normals.k == 30
    cfg, bcfg, _ = load_reconstruct_config(None, ["poisson.scale=1.2"], backend="poisson")
    assert bcfg.scale == pytest.approx(1.2)
    with pytest.raises(ConfigError, match="'poisson.dept'"):
        load_reconstruct_config(None, ["dept=9"], backend="poisson")
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        load_reconstruct_config(None, [], backend="nope")
    with pytest.raises(ConfigError, match="'normals.kk'"):
        load_reconstruct_config(None, ["normals.kk=3"], backend="poisson")
