"""Typed configs: loading, overrides and typed values, unknown keys and wrong types named in the error,
one documented copy of every option. (Every file under configs/ is loaded in tests/test_configs_folder.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pytest
import yaml

from recon.backends.kernel import KernelConfig
from recon.backends.poisson import PoissonConfig
from recon.config import (
    describe_fields,
    field_docs,
    from_dict,
    load_yaml,
    parse_override,
    to_dict,
    type_text,
)
from recon.errors import ConfigError
from recon.pipeline import (
    NormalsConfig,
    ReconstructConfig,
    load_reconstruct_config,
    preset_dict,
    reconstruct,
)
from recon.registry import backends, get_backend
from recon.tiling.config import BatchConfig
from recon.types import PointCloud


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


def test_typed_values_reach_the_backend_config_without_text():
    cfg, bcfg, spec = load_reconstruct_config(None, values={"voxel_size": 0.01, "normals.k": 30, "mise_iter": 1})
    assert spec.name == "kernel" and bcfg.voxel_size == 0.01 and bcfg.mise_iter == 1 and cfg.normals.k == 30
    # typed: a string is not parsed into a number (the CLI's --set is the text path)
    with pytest.raises(ConfigError, match="'kernel.depth'"):
        load_reconstruct_config(None, values={"depth": "9"})
    # None is a value (null), not "unset"
    _, vcfg, _ = load_reconstruct_config(None, backend="volsdf", values={"steps": 5, "time_budget": None})
    assert vcfg.steps == 5 and vcfg.time_budget is None
    with pytest.raises(ConfigError, match="'kernel.time_budget'"):
        load_reconstruct_config(None, values={"time_budget": 60.0})
    with pytest.raises(ConfigError, match="unknown config key 'foo.bar'"):
        load_reconstruct_config(None, values={"foo.bar": 1})


def test_preset_then_set_then_values(repo_root):
    preset = str(repo_root / "configs" / "poisson-fine.yaml")
    _, bcfg, _ = load_reconstruct_config(preset)
    assert bcfg.depth == 9
    _, bcfg, _ = load_reconstruct_config(preset, ["depth=10"])
    assert bcfg.depth == 10
    _, bcfg, _ = load_reconstruct_config(preset, ["depth=10"], values={"depth": 7})
    assert bcfg.depth == 7
    # --set backend=... also decides where bare keys go
    cfg, bcfg, spec = load_reconstruct_config(None, ["backend=poisson", "depth=9"])
    assert spec.name == cfg.backend == "poisson" and bcfg.depth == 9


def test_the_typed_backend_config_is_the_one_copy(tmp_path):
    assert "backend_options" not in {f.name for f in __import__("dataclasses").fields(ReconstructConfig)}
    cfg, bcfg, _ = load_reconstruct_config(None, ["poisson.depth=7"], backend="poisson", values={"normals.k": 12})
    out = preset_dict(cfg, bcfg)
    assert set(out) == {"backend", "device", "normals", "poisson"} and out["poisson"]["depth"] == 7
    p = tmp_path / "resolved.yaml"
    p.write_text(yaml.safe_dump(out))
    cfg2, bcfg2, _ = load_reconstruct_config(p)
    assert preset_dict(cfg2, bcfg2) == out
    bad = tmp_path / "old.yaml"
    bad.write_text("backend: poisson\nbackend_options: {depth: 7}\n")
    with pytest.raises(ConfigError, match="'backend_options'"):
        load_reconstruct_config(bad)


def test_reconstruct_refuses_another_backends_config():
    v = np.random.default_rng(0).normal(size=(500, 3))
    cloud = PointCloud((v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32))
    with pytest.raises(ConfigError, match="expected a PoissonConfig"):
        reconstruct(cloud, "poisson", backend_config=KernelConfig())


@dataclass
class Documented:
    a: int = 1
    """the first."""
    b: float = 2.0
    c: str = "x"
    """the third,
    on two lines."""


def test_field_docs_read_the_string_after_each_field():
    assert field_docs(Documented) == {"a": "the first.", "c": "the third,\non two lines."}
    info = {f.name: f for f in describe_fields(Documented, {"a": "0..3"})}
    assert (info["a"].type, info["a"].default, info["a"].range, info["a"].doc) == ("int", 1, "0..3", "the first.")
    assert info["b"].doc == "" and info["b"].range == ""
    assert type_text(int | None) == "int | None" and type_text(Literal["a", "b"]) == "'a' | 'b'"


CONFIG_CLASSES = [get_backend(name).config_class() for name in sorted(backends())] + \
    [NormalsConfig, ReconstructConfig, BatchConfig]


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_config_field_is_documented_once(cls):
    import dataclasses
    import inspect

    fields = [f.name for f in dataclasses.fields(cls)]
    docs = field_docs(cls)
    assert [f for f in fields if not docs.get(f, "").strip()] == []
    # one form only: no "# ..." comment documents a field, no "Attributes:" list repeats them
    src = inspect.getsource(cls)
    assert "Attributes:" not in (cls.__doc__ or "")
    lines = src.splitlines()
    for i, line in enumerate(lines[1:], 1):
        if line.strip().split(":")[0] in fields and ":" in line and not line.strip().startswith(("#", '"')):
            above = lines[i - 1].strip()  # "# ---- group" headings are allowed, doc comments are not
            assert not (above.startswith("# ") and not above.startswith("# ----")), \
                f"{cls.__name__}: comment above {line.strip()}"


def test_describe_fields_shows_the_limits_table():
    info = {f.name: f for f in describe_fields(KernelConfig)}
    assert info["threads"].range == "0..256" and info["threads"].default is None
    assert info["max_voxels"].range == "1000..2e+09" and info["max_voxels"].default == 20_000_000
    assert info["depth"].range == "" and info["depth"].type == "int"
    assert {f.name: f.range for f in describe_fields(PoissonConfig)}["depth"] == "1..16"
    with pytest.raises(ConfigError, match="poisson.depth must be in 1..16"):
        PoissonConfig(depth=17)
    with pytest.raises(ConfigError, match="normals.k must be in"):
        NormalsConfig(k=1)


def test_an_option_of_another_backend_is_refused_not_dropped():
    with pytest.raises(ConfigError, match=r"'poisson.depth' is a poisson option, but the backend is 'kernel'"):
        load_reconstruct_config(None, ["poisson.depth=9"], backend="kernel")
    _, bcfg, _ = load_reconstruct_config(None, ["poisson.depth=9"], backend="poisson")
    assert bcfg.depth == 9
