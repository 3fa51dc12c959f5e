"""Issue 20: no file is ever unpickled. The sources are scanned so that a regression fails here.

Checked in recon/, apps/ and benchmarks/: every ``torch.load`` passes ``weights_only=True``; no
``np.load`` passes ``allow_pickle=True``; nothing imports or calls pickle (or dill, cloudpickle,
joblib, shelve, marshal, pandas' read_pickle) and YAML is read with ``safe_load`` only.

Allowed: ``Connection.recv`` (which unpickles) in apps/viewer/live_process.py and benchmarks/common.py.
Both read only an anonymous ``multiprocessing`` pipe to a process they started themselves (the live
view's child gets the descriptor through ``pass_fds``; the benchmark's spawned worker returns its
result dict), never a file or a socket others can write to.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("recon", "apps", "benchmarks")

#: (regex, why it is refused)
FORBIDDEN = [
    (r"weights_only\s*=\s*False", "torch.load must not unpickle objects"),
    (r"allow_pickle\s*=\s*True", "np.load must not unpickle objects"),
    (r"\bpickle\s*\.\s*loads?\b", "unpickling"),
    (r"^\s*(import|from)\s+(c?pickle|_pickle|dill|cloudpickle|shelve|marshal)\b", "a pickle-like module"),
    (r"\bjoblib\s*\.\s*load\b", "joblib.load unpickles"),
    (r"\bread_pickle\b", "pandas.read_pickle unpickles"),
    (r"\byaml\s*\.\s*(load|unsafe_load|full_load|load_all)\s*\(", "YAML must be read with yaml.safe_load"),
    (r"\.recv\s*\(\s*\)", "Connection.recv unpickles what the other end sent"),
]
#: files allowed to use one refused pattern (see the module docstring for why)
ALLOWED = {
    ("apps/viewer/live_process.py", r"\.recv\s*\(\s*\)"),
    ("benchmarks/common.py", r"\.recv\s*\(\s*\)"),
}


def _unsafe_load_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of torch.load calls without ``weights_only=True`` and np.load calls with a
    non-False ``allow_pickle`` in a parsed module."""
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        owner = node.func.value.id
        if owner == "torch":
            safe = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
            if not safe:
                out.append((node.lineno, "torch.load without weights_only=True"))
        elif owner in ("np", "numpy") and "allow_pickle" in kw:
            v = kw["allow_pickle"]
            if not (isinstance(v, ast.Constant) and v.value is False):
                out.append((node.lineno, "np.load with allow_pickle not False"))
    return out


def findings(rel: str, text: str) -> list[str]:
    """Every refused use in one source file, as ``path:line: why``."""
    out = []
    for pattern, why in FORBIDDEN:
        if (rel, pattern) in ALLOWED:
            continue
        for m in re.finditer(pattern, text, flags=re.MULTILINE):
            out.append(f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: {why}")
    out += [f"{rel}:{line}: {why}" for line, why in _unsafe_load_calls(ast.parse(text))]
    return out


def _sources() -> list[Path]:
    return sorted(p for d in SCANNED for p in (REPO / d).rglob("*.py") if ".venv" not in p.parts)


def test_sources_never_unpickle():
    files = _sources()
    assert len(files) > 50  # the scan really covers the code
    problems = [f for p in files for f in findings(p.relative_to(REPO).as_posix(), p.read_text(encoding="utf-8"))]
    assert not problems, "\n".join(problems)


def test_the_allowed_pipes_are_still_where_the_docstring_says():
    """The exceptions stay justified: both files still read a pipe they opened themselves."""
    live = (REPO / "apps/viewer/live_process.py").read_text()
    assert "Pipe(duplex=True)" in live and "pass_fds=(theirs.fileno(),)" in live
    bench = (REPO / "benchmarks/common.py").read_text()
    assert "ctx.Pipe(duplex=False)" in bench


def test_the_scan_catches_each_refused_use():
    bad = {
        "torch.load(p, weights_only=False)": "torch.load must not",
        "torch.load(p)": "without weights_only=True",
        "torch.load(\n    p,\n    map_location='cpu')": "without weights_only=True",
        "np.load(p, allow_pickle=True)": "np.load must not",
        "np.load(p, allow_pickle=flag)": "allow_pickle not False",
        "import pickle": "pickle-like module",
        "from dill import loads": "pickle-like module",
        "x = pickle.loads(b)": "unpickling",
        "yaml.load(fh)": "safe_load",
        "pd.read_pickle(p)": "read_pickle",
        "joblib.load(p)": "joblib",
        "msg = conn.recv()": "Connection.recv",
    }
    for code, why in bad.items():
        got = findings("recon/x.py", code + "\n")
        assert any(why in f for f in got), (code, got)
    ok = "torch.load(p, map_location='cpu', weights_only=True)\nnp.load(p, allow_pickle=False)\nyaml.safe_load(fh)\n"
    assert findings("recon/x.py", ok) == []
    assert findings("apps/viewer/live_process.py", "kind = conn.recv()\n") == []
