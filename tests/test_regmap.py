"""The register map and what it generates: docs, C header, JSON, hash."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hw.regmap import REGMAP, Access, to_c_header, to_json, to_markdown

REPO = Path(__file__).resolve().parent.parent


def test_docs_are_generated_from_the_map():
    assert (REPO / "docs" / "regmap.md").read_text() == to_markdown(), \
        "docs/regmap.md is stale: run `.venv/bin/python -m hw.regmap`"


def test_addresses_unique_aligned_and_counters_paired():
    addrs = [r.offset for r in REGMAP.all_registers()]
    assert len(addrs) == len(set(addrs)) and all(a % 4 == 0 for a in addrs)
    for name, (lo, hi) in REGMAP.counters.items():
        assert hi.offset == lo.offset + 4 and lo.access is Access.RO, name


def test_hash_is_a_function_of_the_map():
    assert REGMAP.hash == REGMAP.hash and 0 <= REGMAP.hash < 1 << 32
    data = json.loads(to_json())
    assert data["hash"] == REGMAP.hash
    assert {r["name"]: r["address"] for r in data["registers"]} == \
        {r.name: r.offset for r in REGMAP.all_registers()}


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler on this machine")
def test_c_header_compiles(tmp_path):
    (tmp_path / "wirespeed_regs.h").write_text(to_c_header())
    src = tmp_path / "t.c"
    src.write_text('#include "wirespeed_regs.h"\n'
                   "_Static_assert(WS_REG_ID_MAGIC == 0x0, \"identity first\");\n"
                   "unsigned magic(void) { return WS_MAGIC; }\n")
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-fsyntax-only", str(src)],
                   check=True, cwd=tmp_path)
