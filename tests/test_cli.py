"""The wirespeed CLI, end to end on the simulated card (it only calls the library)."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner

from host.cli import main
from hw.regmap import REGMAP
from sim.feed import dayfile, synth
from sim.feed.frames import FeedAddress
from sim.feed.pcap import Frame, dayfile_to_frames, write_frames

FEED = FeedAddress("233.54.12.1", 26477)


def run(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_replay_day_file_json(tmp_path):
    day = tmp_path / "day.NASDAQ_ITCH50.gz"
    msgs = synth.generate_day(3000, seed=5)
    dayfile.write_dayfile(day, msgs)
    r = run("replay", str(day), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert set(out) >= {"counters", "events", "messages", "cycles"}
    c = out["counters"]
    assert out["messages"] == len(msgs) == c["messages"]
    assert set(c) == set(REGMAP.counters)      # counter names are the documented ones
    for name in ("frames", "frames_dropped", "mold_packets", "messages", "gaps",
                 "duplicates", "heartbeats"):
        assert name in c
    assert c["frames_dropped"] == 0 and c["gaps"] == 0 and c["end_of_session"] == 1
    assert out["events"] == {"END_OF_SESSION": 1, "SESSION": 1}
    assert sum(v for k, v in c.items() if k.startswith("itch_")) == len(msgs)


def test_replay_two_pcaps_with_loss_and_a_foreign_feed(tmp_path):
    rng = random.Random(3)
    msgs = synth.generate_day(4000, seed=9)
    frames = list(dayfile_to_frames(msgs, "CLI0000001", FEED))
    a = [f for f in frames if rng.random() > 0.1]
    b = [Frame(f.timestamp_ns + 200, f.data) for f in frames if rng.random() > 0.1]
    other = list(dayfile_to_frames(msgs[:500], "OTHER00001", FeedAddress("233.54.12.2", 1)))
    write_frames(tmp_path / "a.pcap", sorted(a + other, key=lambda f: f.timestamp_ns))
    write_frames(tmp_path / "b.pcap", b)
    r = run("replay", str(tmp_path / "a.pcap"), "--line-b", str(tmp_path / "b.pcap"),
            "--feed", str(FEED), "--json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.output.strip().splitlines()[-1])["counters"]
    both_lost = len(frames) - len({f.data for f in a} | {f.data for f in b})
    assert c["drop_filtered"] == len(other)
    assert c["line_a_won"] > 0 and c["line_b_won"] > 0
    assert (c["gaps"] > 0) == (both_lost > 0)
    assert c["messages"] + c["gap_messages"] == len(msgs)


def test_bad_arguments_are_clear(tmp_path):
    day = tmp_path / "d.itch"
    dayfile.write_dayfile(day, synth.generate_day(2000, seed=1))
    r = CliRunner().invoke(main, ["replay", str(day), "--feed", "233.54.12.1"])
    assert r.exit_code != 0 and "GROUP:PORT" in r.output
    r = CliRunner().invoke(main, ["replay", str(tmp_path / "missing.pcap")])
    assert r.exit_code != 0 and "does not exist" in r.output
    broken = tmp_path / "broken.itch"
    broken.write_bytes(b"\x00\x30\x41")        # a record claiming 48 bytes, 1 present
    r = CliRunner().invoke(main, ["replay", str(broken)])
    assert r.exit_code != 0 and "Error" in r.output and "Traceback" not in r.output


def test_info_and_regs():
    r = run("info", "--json")
    assert r.exit_code == 0
    ident = json.loads(r.output)["identity"]
    assert ident["regmap_hash"] == f"{REGMAP.hash:#010x}" and ident["filters"] == 8
    r = run("regs", "write", "filter3_ip", "0xe9360c05")
    assert r.exit_code == 0 and "0xe9360c05" in r.output
    r = run("regs", "read", "id_magic")
    assert r.output.strip() == "0x57535044"
    r = CliRunner().invoke(main, ["regs", "read", "filter_ip"])
    assert r.exit_code != 0 and "did you mean" in r.output
    r = CliRunner().invoke(main, ["regs", "write", "id_magic", "1"])
    assert r.exit_code != 0 and "read-only" in r.output
    r = run("regs", "dump")
    assert "id_regmap_hash" in r.output and "counters" not in r.output.splitlines()[0]
