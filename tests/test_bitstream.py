"""Bitstreams and manifests (host/bitstream.py, tools/bitstream.py, ``wirespeed bitstream``).

The bitstream under test is real: a small design placed, routed and packed by the same
toolchain and the same code as the core's (``tools/synth_ecp5.py --bitstream``, then
``tools/bitstream.release``), about 10 s. Every way a file can stop matching its manifest is
made by hand and must be reported as an integrity problem; the committed bitstreams must be
intact and drivable by this host.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from host.bitstream import (
    BITFILE,
    ECP5_IDCODES,
    MANIFEST,
    BitstreamError,
    check,
    discover,
    identity_comment,
    load_manifest,
    parse_ecp5,
)
from host.cli import main as cli
from hw.regmap import REGMAP
from tests.test_synth_ecp5 import CounterAdder, needs_synth
from tools import bitstream as tool
from tools.synth_ecp5 import synth

REPO = Path(__file__).resolve().parent.parent

IDENT = {"git_rev": 0x1234ABCD, "build_time": 1_700_000_000, "dirty": False,
         "commit": "1234abcd" + "0" * 32}

@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bitstream and its manifest, as tools/bitstream.py writes them."""
    if os.environ.get("WIRESPEED_SKIP_SYNTH") == "1":
        pytest.skip("WIRESPEED_SKIP_SYNTH=1")
    base = tmp_path_factory.mktemp("bit")
    core = tool.make_core(IDENT, {"slots": 2})
    result = synth(CounterAdder(8, 8), "tiny", shell=True, workdir=base / "run",
                   freq_mhz=100, bitstream=True, usercode=IDENT["git_rev"],
                   comments=[tool._comment(core)])
    return tool.release("tiny", result, core, IDENT, {"slots": 2}, result.commands,
                        base / "out")


@pytest.fixture
def copy(released: Path, tmp_path: Path) -> Path:
    """A private copy of the released directory, to damage."""
    dest = tmp_path / "tiny"
    shutil.copytree(released, dest)
    return dest


def _edit(d: Path, fn) -> None:
    m = json.loads((d / MANIFEST).read_text())
    fn(m)
    (d / MANIFEST).write_text(json.dumps(m))


def test_what_ecppack_wrote_reads_back(released: Path) -> None:
    bs = parse_ecp5((released / BITFILE).read_bytes())
    assert bs.idcode == tool.IDCODE == 0x81113043 and bs.part == "LFE5UM5G-85F"
    assert bs.usercode == IDENT["git_rev"]
    assert bs.comments[0] == "Part: LFE5UM5G-85F-8CABGA381"      # nextpnr's, kept first
    assert bs.identity() == {"git_rev": "1234abcd", "regmap_hash": f"{REGMAP.hash:#010x}",
                             "dirty": "0"}


def test_an_intact_bitstream_passes(released: Path) -> None:
    for path in (released, released / MANIFEST, released / BITFILE):
        r = check(path)
        assert r.ok, r.as_dict()
        assert r.integrity == r.compatibility == []
    [w] = r.warnings                        # the tiny design meets 156.25 MHz easily
    assert w.startswith("not deployable: scan shell")
    m = load_manifest(released / MANIFEST).data
    assert m["design"]["book"]["slots"] == 2 and m["design"]["clock_khz"] == 156_250
    assert m["identity"]["id_git_rev"] == "0x1234abcd"
    assert m["timing"]["fmax_mhz"] > 100 and m["timing"]["met"]
    assert {"yosys", "nextpnr-ecp5", "ecppack", "amaranth"} <= set(m["toolchain"])
    assert any("ecppack" in c and "--usercode 305441741" in c for c in m["commands"])


def test_any_changed_byte_is_caught(copy: Path) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    data = bytearray((copy / BITFILE).read_bytes())
    for _ in range(20):
        i = rng.randrange(len(data))
        damaged = bytearray(data)
        damaged[i] ^= 1 << rng.randrange(8)
        (copy / BITFILE).write_bytes(damaged)
        r = check(copy)
        assert not r.ok and any("sha256" in p for p in r.integrity), f"seed {seed}, byte {i}"


@pytest.mark.parametrize("damage, expect", [
    (lambda d: (d / BITFILE).write_bytes((d / BITFILE).read_bytes()[:-100]), "bytes"),
    (lambda d: (d / BITFILE).unlink(), "missing"),
    (lambda d: (d / BITFILE).write_bytes(b"\x00" * 64), "no ECP5 preamble"),
    (lambda d: _edit(d, lambda m: m.update(idcode="0x41113043")), "IDCODE 0x81113043"),
    (lambda d: _edit(d, lambda m: m.update(usercode="0x00000001")), "USERCODE 0x1234abcd"),
    (lambda d: _edit(d, lambda m: m["source"].update(git_rev="deadbeef")),
     "git_rev 1234abcd in the bitstream"),
    (lambda d: _edit(d, lambda m: m["source"].update(dirty=True)), "dirty 0 in the bitstream"),
    (lambda d: _edit(d, lambda m: m.update(device="LFE5U-85F-8BG381")), "packed for"),
    (lambda d: _edit(d, lambda m: m.pop("sha256")), "missing key 'sha256'"),
    (lambda d: _edit(d, lambda m: m.update(bytes="12")), "'bytes' must be int"),
    (lambda d: _edit(d, lambda m: m["timing"].pop("fmax_mhz")), "timing.fmax_mhz"),
    (lambda d: _edit(d, lambda m: m.update(format="other/9")), "format 'other/9'"),
    (lambda d: _edit(d, lambda m: m.update(file="../x.bit")), "next to the manifest"),
    (lambda d: _edit(d, lambda m: m["regmap"].update(hash="zz")), "not hexadecimal"),
    (lambda d: (d / MANIFEST).write_text('{"format":\n'), "not JSON (line 2"),
    (lambda d: (d / MANIFEST).unlink(), "no manifest"),
], ids=["truncated", "no-bit", "not-ecp5", "idcode", "usercode", "rev", "dirty", "device",
        "no-sha", "bytes-type", "no-fmax", "format", "path", "hex", "json", "no-manifest"])
def test_damage_is_an_integrity_problem(copy: Path, damage, expect: str) -> None:
    damage(copy)
    r = check(copy)
    assert not r.ok and r.compatibility == []
    assert any(expect in p for p in r.integrity), r.integrity


def test_an_unknown_register_map_is_not_drivable(copy: Path) -> None:
    r = check(copy, known_hashes=frozenset({REGMAP.hash ^ 1}))
    assert r.integrity == [] and not r.ok
    [p] = r.compatibility
    assert f"register map {REGMAP.hash:#010x}" in p and "1234abcd" in p


def test_timing_and_dirty_are_warnings(copy: Path) -> None:
    # A dirty build: the identity in the bitstream would say so too; here the manifest and
    # the comment header are rewritten together, so only the warning remains.
    data = (copy / BITFILE).read_bytes()
    old = identity_comment(git_rev=IDENT["git_rev"], regmap_hash=REGMAP.hash, dirty=False)
    new = identity_comment(git_rev=IDENT["git_rev"], regmap_hash=REGMAP.hash, dirty=True)
    data = data.replace(old.encode(), new.encode())
    (copy / BITFILE).write_bytes(data)

    def edit(m: dict) -> None:
        import hashlib
        m["source"]["dirty"] = True
        m["timing"]["fmax_mhz"] = 25.29
        m["sha256"] = hashlib.sha256(data).hexdigest()
    _edit(copy, edit)
    r = check(copy)
    assert r.ok, r.as_dict()
    assert any("25.29 MHz is below the 156.25 MHz" in w for w in r.warnings)
    assert any("dirty tree" in w for w in r.warnings)


def test_parse_refuses_what_is_not_an_ecp5_bitstream() -> None:
    with pytest.raises(BitstreamError, match="not terminated"):
        parse_ecp5(b"\xff\x00Part: x")
    with pytest.raises(BitstreamError, match="before VERIFY_ID"):
        parse_ecp5(b"\xff\xff\xbd\xb3\x3b\x00\x00\x00\x22\x00\x00\x00")
    with pytest.raises(BitstreamError, match="no VERIFY_ID"):
        parse_ecp5(b"\xff\xff\xbd\xb3\x3b\x00\x00\x00")
    # The smallest stream with the commands that matter, and no comment header.
    bs = parse_ecp5(b"\xff\xff\xbd\xb3\xff\x3b\x00\x00\x00\xe2\x00\x00\x00\x81\x11\x30\x43"
                    + b"\x00" * 8 + b"\xff" * 4 + b"\xc2\x00\x00\x00\xca\xfe\xf0\x0d"
                    + b"\x5e\x00\x00\x00\xff")
    assert (bs.comments, bs.part, bs.usercode) == ((), "LFE5UM5G-85F", 0xCAFEF00D)
    assert bs.identity() == {}
    assert len(ECP5_IDCODES) == 10
    # A C2 inside the frames (no padding before it) is not the USERCODE command.
    bs = parse_ecp5(b"\xff\xff\xbd\xb3\xe2\x00\x00\x00\x81\x11\x30\x43\x01\xc2\x00\x00\x00"
                    + b"\x12\x34\x56\x78\x5e\x00\x00\x00")
    assert bs.usercode is None


def test_cli_check(released: Path, copy: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["bitstream", "check", str(released)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("OK   tiny: LFE5UM5G-85F-8BG381, 1234abcd")
    assert "warnings: not deployable" in ok.output

    (copy / BITFILE).write_bytes((copy / BITFILE).read_bytes()[:-1])
    bad = runner.invoke(cli, ["bitstream", "check", "--json", str(released), str(copy)])
    assert bad.exit_code == 1
    a, b = (json.loads(line) for line in bad.output.splitlines())
    assert a["ok"] and not b["ok"] and b["integrity"]

    every = runner.invoke(cli, ["bitstream", "check", "--root", str(released.parent)])
    assert every.exit_code == 0 and every.output.startswith("OK   tiny")
    empty = runner.invoke(cli, ["bitstream", "check", "--root", str(copy)])
    assert empty.exit_code == 1 and "no bitstream" in empty.output


def test_pack_of_a_routed_run(released: Path, tmp_path: Path) -> None:
    """``pack``: the run's routed configuration becomes a release like ``build``'s."""
    work = tmp_path / "run"
    shutil.copytree(released.parent.parent / "run", work)
    (work / "design.il").unlink()          # that is the tiny design's, not the core's
    dest = tool.pack(work, "packed", "HEAD", {"slots": 2}, 1, ["routed by hand"],
                     tmp_path / "out")
    r = check(dest)
    assert r.ok, r.as_dict()
    m = load_manifest(dest / MANIFEST).data
    head = tool.identity_of("HEAD")
    assert m["source"]["commit"] == head["commit"]
    assert m["usercode"] == f"{head['git_rev']:#010x}" and m["timing"]["target_mhz"] == 100
    assert m["commands"][1] == "routed by hand" and "ecppack" in m["commands"][2]
    # The run was packed before, as IDENT: packing it again relabels it, it does not add a
    # second identity line.
    comments = parse_ecp5((dest / BITFILE).read_bytes()).comments
    assert sum(c.startswith("wirespeed ") for c in comments) == 1


def test_pack_refuses_a_netlist_the_tree_does_not_elaborate_to(released: Path,
                                                                 tmp_path: Path) -> None:
    work = tmp_path / "run"
    shutil.copytree(released.parent.parent / "run", work)   # its design.il: the tiny design
    with pytest.raises(SystemExit, match="is not what the tree elaborates to"):
        tool.pack(work, "x", "HEAD", {"slots": 2}, 1, [], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pack_refuses_a_revision_whose_gateware_differs(tmp_path: Path) -> None:
    first = subprocess.run(["git", "-C", str(REPO), "rev-list", "--max-parents=0", "HEAD"],
                           capture_output=True, text=True, check=True).stdout.split()[0]
    with pytest.raises(SystemExit, match="differs from the tree"):
        tool.pack(tmp_path, "x", first, {}, 1, [], tmp_path)


def test_committed_bitstreams_are_intact_and_drivable() -> None:
    """Every bitstream in bitstreams/ matches its manifest and uses this host's register map.

    When the register map changes, this fails until the bitstream is rebuilt (``make
    bitstream``) or removed: a bitstream the host cannot drive is not one to ship."""
    found = discover(REPO / "bitstreams")
    assert found, "bitstreams/ has no bitstream"
    for d in found:
        r = check(d)
        assert r.ok, r.as_dict()


def test_info_expect_compares_the_running_card(copy: Path) -> None:
    """``wirespeed info --expect``: the card (here the simulated one, HEAD's default core)
    runs a bitstream's design only if every identity register is the manifest's."""
    from host.backends.sim import SimCard
    from host.card import Card
    card = Card(SimCard())
    regs = {name: card.regs.read(name) for name in
            load_manifest(copy / MANIFEST).data["identity"]}
    runner = CliRunner()
    # The tiny release was built for a 2-slot core of revision 1234abcd: not the sim's.
    r = runner.invoke(cli, ["info", "--expect", str(copy)])
    assert r.exit_code == 1, r.output
    assert "the card does NOT run tiny" in r.output
    assert "id_git_rev: the card reports" in r.output and "0x1234abcd" in r.output
    assert "id_book_params" in r.output

    _edit(copy, lambda m: m.update(identity={k: f"{v:#010x}" for k, v in regs.items()}))
    r = runner.invoke(cli, ["info", "--json", "--expect", str(copy / MANIFEST)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["expect"] == {"bitstream": "tiny", "mismatches": []}
    r = runner.invoke(cli, ["info", "--expect", str(copy / BITFILE)])
    assert r.exit_code == 0 and "the card runs tiny" in r.output

    (copy / MANIFEST).write_text("{}")
    r = runner.invoke(cli, ["info", "--expect", str(copy)])
    assert r.exit_code == 1 and "format None" in r.output and "Traceback" not in r.output


@needs_synth
def test_project_trellis_reads_the_committed_bitstream_as_we_do(tmp_path: Path) -> None:
    """An independent reader: ecpunpack (Project Trellis) decodes the whole file — frames and
    block RAM included — and must report the device, USERCODE and comment header that
    host/bitstream.py reads without walking the frames (about 10 s for the 2-slot core)."""
    [d, *_] = discover(REPO / "bitstreams")
    shutil.copyfile(d / BITFILE, tmp_path / BITFILE)     # the WASM tool sees only its cwd
    tool_path = Path(tool.SCRIPTS) / "yowasp-ecpunpack"
    proc = subprocess.run([str(tool_path), BITFILE, "unpacked.config"], cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    ours = parse_ecp5((d / BITFILE).read_bytes())
    assert f"set USERCODE to {ours.usercode:#010x}" in proc.stdout + proc.stderr
    lines = (tmp_path / "unpacked.config").read_text().splitlines()
    assert lines[0] == f".device {ours.part}"
    assert [ln.removeprefix(".comment ") for ln in lines if ln.startswith(".comment ")] == \
        list(ours.comments)
    assert sum(ln.startswith(".tile ") for ln in lines) > 10_000     # it decoded the frames


def test_build_wires_the_flow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``build`` (``make bitstream``, about 25 minutes on the core) with the tiny design in
    place of the core: the flow it asks for, the identity it packs and the manifest."""
    asked = {}

    def fake_synth(design, name, **flow):
        asked.update(flow, design=design, name=name)
        return synth(CounterAdder(8, 8), name, shell=True, workdir=tmp_path / "run",
                     freq_mhz=100, seed=flow["seed"], bitstream=True,
                     usercode=flow["usercode"], comments=flow["comments"])
    monkeypatch.setattr(tool, "synth", fake_synth)
    dest = tool.build("b", {"slots": 2}, 7, None, tmp_path / "out")
    from tools.bench.bench_synth import CORE_FLOW
    head = tool.identity_of("HEAD")
    assert {k: asked[k] for k in CORE_FLOW} == CORE_FLOW
    assert (asked["seed"], asked["bitstream"], asked["usercode"]) == (7, True, head["git_rev"])
    assert asked["design"].book.slots == 2
    assert asked["design"].identity["id_git_rev"] == head["git_rev"]
    r = check(dest)
    assert r.ok, r.as_dict()
    m = load_manifest(dest / MANIFEST).data
    assert m["source"]["commit"] == head["commit"] and m["timing"]["seed"] == 7
    assert m["commands"][0] == "python tools/bitstream.py build b --arg=slots=2 --seed=7"
