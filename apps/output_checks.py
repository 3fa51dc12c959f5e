"""Checks of the files ``recon reconstruct`` will write, made before any work.

Each check raises :class:`recon.errors.ConfigError` naming the option, the file and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recon.errors import ConfigError
from recon.io.outputs import check_output_file, same_file

#: the mesh formats ``-o`` may name
MESH_OUTPUT_EXTENSIONS = (".ply", ".obj", ".stl", ".off", ".glb")


def check_mesh_output(path: Path, inputs: list[Any]) -> None:
    """A mesh output: a known extension, not one of ``inputs``, in a writable folder."""
    ext = path.suffix.lower()
    if ext not in MESH_OUTPUT_EXTENSIONS:
        raise ConfigError(f"cannot write a mesh as '{ext or '(no extension)'}'", str(path),
                          "name the output .ply, .obj, .stl, .off or .glb")
    check_output_file(path, inputs)


def check_distinct(outputs: dict[str, Path | None]) -> None:
    """Two outputs of one command may not be the same file (the second would replace the first).

    Args:
        outputs: option as typed -> the file it names (None: not given).
    """
    given = [(opt, p) for opt, p in outputs.items() if p is not None]
    for i, (opt_a, a) in enumerate(given):
        for opt_b, b in given[i + 1:]:
            if same_file(a, b):
                raise ConfigError(f"{opt_a} and {opt_b} name the same file", str(b), f"give {opt_b} another name")


def _check_npz_name(path: Path, option: str, problem: str, example: str) -> None:
    """An .npz name (else ``problem``, fix: ``example``) in an existing folder."""
    if path.suffix.lower() != ".npz":
        raise ConfigError(problem, str(path), f"name it e.g. {example}")
    if not path.resolve().parent.is_dir():
        raise ConfigError(f"the folder for {option} does not exist", str(path), f"create {path.resolve().parent} first")


def check_gaussians_output(path: Path, backend: str) -> None:
    """``--save-gaussians`` needs a .npz name in an existing folder and the gvkf backend."""
    _check_npz_name(path, "--save-gaussians", "saved Gaussians are an .npz file", "gaussians.npz")
    if backend != "gvkf":
        raise ConfigError(f"backend '{backend}' has no Gaussians to save", str(path),
                          "use --backend gvkf, or drop --save-gaussians")


def check_field_output(path: Path, backend: str) -> None:
    """``--save-field`` needs a .npz name in an existing folder and a backend with a kernel field."""
    _check_npz_name(path, "--save-field", "a saved field is an .npz file", "field.npz")
    if backend != "kernel":
        raise ConfigError(f"backend '{backend}' has no field to save", str(path),
                          "use --backend kernel, or drop --save-field")


__all__ = ["MESH_OUTPUT_EXTENSIONS", "check_distinct", "check_field_output", "check_gaussians_output",
           "check_mesh_output"]
