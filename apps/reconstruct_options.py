"""Which ``recon reconstruct`` options apply to which input and backend, and how shortcuts become settings.

Some options only make sense for one kind of input (``--sample`` for point clouds and meshes,
``--resume`` for posed-image folders) and the shortcuts (``--depth``, ``--detail``, ``--steps``,
...) set an option of one backend. An option that does not apply is refused before any work
with a :class:`recon.errors.ConfigError` that says what to use instead; nothing is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from recon.errors import ConfigError
from recon.registry import BackendSpec

#: the backends that train on posed images and take --steps / --time-budget
IMAGE_BACKENDS = ("volsdf", "gvkf")
#: options that apply to point-cloud and mesh inputs only
POINT_INPUT_OPTIONS = ("--sample", "--ignore-normals", "--save-field")
#: options that apply to posed-image folders only
IMAGE_INPUT_OPTIONS = ("--steps", "--time-budget", "--resume", "--checkpoint-dir", "--mask-dir", "--save-gaussians")


@dataclass(frozen=True)
class Shortcut:
    """A command-line option that sets one backend option.

    Attributes:
        option: as typed, e.g. ``--depth``.
        key: the option in the backend's config section, e.g. ``depth``.
        backends: the backends it belongs to (registry names).
    """

    option: str
    key: str
    backends: tuple[str, ...]


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("--depth", "depth", ("poisson",)),
    Shortcut("--detail", "detail", ("kernel",)),
    Shortcut("--voxel-size", "voxel_size", ("kernel",)),
    Shortcut("--chunk-size", "chunk_size", ("kernel",)),
    Shortcut("--mise-iter", "mise_iter", ("kernel",)),
    Shortcut("--model", "model", ("kernel",)),
    Shortcut("--steps", "steps", IMAGE_BACKENDS),
    Shortcut("--time-budget", "time_budget", IMAGE_BACKENDS),
)
_BY_OPTION = {s.option: s for s in SHORTCUTS}


def given(options: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave: not None and not False (flags default to False)."""
    return {opt: v for opt, v in options.items() if v is not None and v is not False}


def check_input_kind(options: dict[str, Any], posed: bool) -> None:
    """Refuse options meant for the other kind of input.

    Args:
        options: option as typed -> value, only those given (see :func:`given`).
        posed: the input is a posed-image folder (else a point cloud or mesh).

    Raises:
        ConfigError: the first option that does not apply, with what to do instead.
    """
    for opt in options:
        shortcut = _BY_OPTION.get(opt)
        if posed and (opt in POINT_INPUT_OPTIONS or (shortcut and set(shortcut.backends).isdisjoint(IMAGE_BACKENDS))):
            owner = "point clouds and meshes" if shortcut is None else f"{_names(shortcut.backends)} on point clouds"
            raise ConfigError(f"{opt} applies to {owner}, not to posed-image folders", None,
                              f"drop {opt} (posed images train with --steps and --time-budget)")
        if not posed and opt in IMAGE_INPUT_OPTIONS:
            raise ConfigError(f"{opt} is an option of the image backends ({_names(IMAGE_BACKENDS)}), which train on "
                              "posed-image folders; the input is a point cloud", None,
                              f"drop {opt} (point-cloud backends do not train)")


def check_shortcuts(options: dict[str, Any], spec: BackendSpec) -> None:
    """Refuse a shortcut that belongs to another backend than the one chosen.

    Args:
        options: option as typed -> value, only those given.
        spec: the chosen backend.

    Raises:
        ConfigError: e.g. ``--depth is a poisson option, but the backend is 'kernel'`` with the fix
            ``use --backend poisson, or set kernel's own 'depth' with --set depth=9`` (the ``--set``
            spelling when the chosen backend has an option of that name, else ``or drop --depth``).
    """
    for opt, value in options.items():
        shortcut = _BY_OPTION.get(opt)
        if shortcut is None or spec.name in shortcut.backends:
            continue
        fix = "use " + " or ".join(f"--backend {b}" for b in shortcut.backends)
        if shortcut.key in option_names(spec):
            fix += f", or set {spec.name}'s own '{shortcut.key}' with --set {shortcut.key}={_example(value)}"
        else:
            fix += f", or drop {opt}"
        raise ConfigError(f"{opt} is a {_names(shortcut.backends)} option, but the backend is '{spec.name}'",
                          None, fix)


#: the step count ``--time-budget`` alone sets: more than any budget trains (the image configs' LIMITS bound)
UNCAPPED_STEPS = 100_000_000


def shortcut_values(options: dict[str, Any]) -> dict[str, Any]:
    """Typed settings of the shortcuts given, keyed by the chosen backend's config field.

    ``--steps`` without ``--time-budget`` also sets ``time_budget`` to None: train exactly that many steps.
    ``--time-budget`` without ``--steps`` lifts the step cap (``steps`` = UNCAPPED_STEPS): the time decides.

    Args:
        options: option as typed -> value, only those given; ``--time-budget`` already in seconds.
    """
    out = {_BY_OPTION[opt].key: value for opt, value in options.items() if opt in _BY_OPTION}
    if "--steps" in options and "--time-budget" not in options:
        out["time_budget"] = None
    if "--time-budget" in options and "--steps" not in options:
        out["steps"] = UNCAPPED_STEPS
    return out


def option_names(spec: BackendSpec) -> set[str]:
    """The option names of a backend's config class (its dataclass fields)."""
    cls = spec.config_class()
    return {f.name for f in fields(cls)} if is_dataclass(cls) else set()


def parse_duration(text: str | None) -> float | None:
    """``"90"``/``"90s"`` -> 90, ``"20m"`` -> 1200, ``"1.5h"`` -> 5400 seconds; None -> None.

    Raises:
        ConfigError: not a positive duration.
    """
    if text is None:
        return None
    t = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(t[-1:], None)
    try:
        value = float(t[:-1] if scale else t) * (scale or 1.0)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"--time-budget '{text}' is not a duration", None, "write e.g. 90s, 20m or 1h")
    return value


def _names(backends: tuple[str, ...]) -> str:
    return " / ".join(backends)


def _example(value: Any) -> str:
    return "true" if value is True else str(value)


__all__ = ["IMAGE_BACKENDS", "IMAGE_INPUT_OPTIONS", "POINT_INPUT_OPTIONS", "SHORTCUTS", "Shortcut",
           "check_input_kind", "check_shortcuts", "given", "option_names", "parse_duration", "shortcut_values"]
