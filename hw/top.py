"""Emit the core as Verilog: ``python -m hw.top [-o build/wirespeed_core.v]``.

The identity block carries the source revision. Its "build time" is the commit time of that
revision rather than the wall clock, so the same source always yields the same Verilog and the
simulation harness is rebuilt only when the design really changed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
from pathlib import Path

from amaranth.back import verilog

from hw.core import Core

TOP_NAME = "wirespeed_core"
REPO = Path(__file__).resolve().parent.parent


def git_identity(rev: str = "HEAD", repo: Path = REPO) -> dict:
    """The identity of revision ``rev``: its first 8 hex digits as an int, its commit time,
    dirty when it is HEAD and hw/ or proto/ has uncommitted changes, and the full ``commit``.
    Raises when git or the revision is missing."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    full = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    dirty = full == git("rev-parse", "HEAD") and bool(
        git("status", "--porcelain", "--untracked-files=no", "--", "hw", "proto"))
    return {"git_rev": int(full[:8], 16), "build_time": int(git("log", "-1", "--format=%ct",
                                                                  full)),
            "dirty": dirty, "commit": full}


def source_identity(repo: Path = REPO) -> dict:
    """git revision (first 8 hex digits as int), commit time and dirty flag of the working
    tree (:func:`git_identity` of HEAD, the parameters of :class:`Core`); zeros outside git."""
    try:
        ident = git_identity("HEAD", repo)
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError):
        return {"git_rev": 0, "build_time": 0, "dirty": False}
    del ident["commit"]
    return ident


def build_core(**params) -> Core:
    ident = source_identity()
    ident.update(params)
    return Core(**ident)


def _design_key(params: dict) -> str:
    """Everything the Verilog depends on: the gateware sources, parameters, source identity.

    Converting the core takes about a minute since the book joined it; every test process
    and CLI call that needs the Verilog would pay it again, so conversions are cached."""
    h = hashlib.sha256()
    for d in ("hw", "proto"):
        for f in sorted((REPO / d).rglob("*.py")):
            h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    ident = source_identity()
    ident.update(params)
    h.update(repr(sorted((k, repr(v)) for k, v in ident.items())).encode())
    import amaranth
    h.update(amaranth.__version__.encode())
    return h.hexdigest()[:24]


def emit_verilog(path: Path, **params) -> Path:
    """Write the core's Verilog to ``path`` (untouched when unchanged, to keep mtimes).

    Conversions are cached in ``build/verilog-cache/`` by :func:`_design_key`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cache = REPO / "build" / "verilog-cache" / f"{_design_key(params)}.v"
    if cache.exists():
        text = cache.read_text()
    else:
        text = verilog.convert(build_core(**params), name=TOP_NAME)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(cache)      # atomic: parallel test workers may race here
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=REPO / "build" / f"{TOP_NAME}.v")
    args = ap.parse_args()
    print(emit_verilog(args.output))


if __name__ == "__main__":
    main()
