"""Photos in, coloured mesh out (issue 22): every section, then one results file.

Sections (each its own script, resumable, writing its own results file under benchmarks/results/):

* ``photos_sfm.py``          structure-from-motion on the fox and the temple      -> photos_sfm.md
* ``photos_temple.py``       temple with gvkf from given poses and from photos     -> photos_temple.md
* ``photos_colour.py``       vertex colours alone on held-out renders              -> photos_colour.md
* ``photos_short_budget.py`` VolSDF at a 2-minute whole-run budget                 -> photos_short_budget.md

    python benchmarks/bench_photos.py                  # run every section (hours on 2 CPU cores), then collect
    python benchmarks/bench_photos.py --collect        # only gather the section files into results/photos.md
    python benchmarks/bench_photos.py --sections sfm short_budget
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"

#: section -> (script, arguments, results file)
SECTIONS = {
    "sfm": ("photos_sfm.py", [], "photos_sfm.md"),
    "temple": ("photos_temple.py", ["--minutes", "20"], "photos_temple.md"),
    "colour": ("photos_colour.py", ["--resume"], "photos_colour.md"),
    "short_budget": ("photos_short_budget.py", ["--resume"], "photos_short_budget.md"),
}


def collect(out: Path) -> None:
    """Concatenate the section files (headings shifted one level down) into ``out``."""
    parts = ["# Photos in, coloured mesh out (issue 22)\n",
             "Collected by `python benchmarks/bench_photos.py --collect` from the section files; each section "
             "says when and under which load it ran.\n"]
    for name, (script, _, results) in SECTIONS.items():
        path = RESULTS / results
        if not path.is_file():
            parts.append(f"## {name}\n\nnot run yet: `python benchmarks/{script}`\n")
            continue
        text = path.read_text(encoding="utf-8")
        parts.append("\n".join("#" + line if line.startswith("#") else line for line in text.splitlines()) + "\n")
    out.write_text("\n".join(parts), encoding="utf-8")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="*", default=list(SECTIONS), help=f"subset of {', '.join(SECTIONS)}")
    ap.add_argument("--collect", action="store_true", help="only gather the existing section files")
    ap.add_argument("--out", type=Path, default=RESULTS / "photos.md")
    args = ap.parse_args()
    if not args.collect:
        for name in args.sections:
            script, extra, _ = SECTIONS[name]
            print(f"== {name}: {script} {' '.join(extra)}", flush=True)
            subprocess.run([sys.executable, str(BENCH_DIR / script), *extra], check=True)
    collect(args.out)


if __name__ == "__main__":
    main()
