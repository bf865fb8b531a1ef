"""The README's quick start, run as written: every command succeeds and prints the value its
comment states (the exact values are the tasks' closed forms)."""
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from usable.cli import make_cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
QUICK = README[README.index("## Quick start"):README.index("### From Python")]


def commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", QUICK, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("usable ")]


def rows(output: str) -> dict[tuple[str, str], float]:
    """(variable, source or "") -> mean, from a printed result table (right-aligned columns)."""
    lines = output.splitlines()
    head = next(i for i, li in enumerate(lines) if li.strip().startswith("variable"))
    names = lines[head].split()
    ends = [m.end() for m in re.finditer(r"\S+", lines[head])]
    spans = list(zip([0] + ends[:-1], ends))
    out = {}
    for li in lines[head + 1:]:
        if not re.match(r"\s*[a-z_]+ ", li) or li.startswith(("stored", "warning", "wrote")):
            break
        cell = {n: li[a:b].strip() for n, (a, b) in zip(names, spans)}
        out[(cell["variable"], cell.get("source", ""))] = float(cell["mean"])
    return out


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory):
    import os
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("readme"))
    try:
        outs = {}
        for cmd in commands():
            args = shlex.split(cmd)[1:]
            res = CliRunner().invoke(make_cli(), args + (["--threads", "1"] if args[0] == "run" else []))
            assert res.exit_code == 0, (cmd, res.output)
            assert not re.findall(r"^warning: \w+ = .*$", res.output, flags=re.M), (cmd, res.output)  # no guard trips
            outs[cmd] = res.output
        assert Path("r.png").stat().st_size > 10_000
        return outs
    finally:
        os.chdir(here)


def output_of(outs, start):
    return next(v for k, v in outs.items() if k.startswith(start))


def test_quick_start_lists_the_documented_commands():
    cmds = commands()
    assert len(cmds) == 8 and cmds[2].startswith("usable run usable:joint=true")


def test_usable_information_of_and(quick_start):
    r = rows(output_of(quick_start, "usable run usable:joint=true"))
    assert r[("usable_information", "x1")] == pytest.approx(0.311, abs=0.02)
    assert r[("usable_information", "x2")] == pytest.approx(0.311, abs=0.02)
    assert r[("usable_information", "x1+x2")] == pytest.approx(0.811, abs=0.03)


def test_rine_of_rdnxor(quick_start):
    out = output_of(quick_start, "usable run rine --source pid:task=rdnxor")
    assert 0.95 <= rows(out)[("redundant_information", "")] <= 1.02
    assert "warning" not in out


def test_atoms_of_and(quick_start):
    r = rows(output_of(quick_start, "usable run rine:atoms=true"))
    assert r[("redundant_information", "")] == pytest.approx(0.0, abs=0.03)
    assert r[("unique_information", "x1")] == pytest.approx(0.311, abs=0.03)
    assert r[("unique_information", "x2")] == pytest.approx(0.311, abs=0.03)
    assert r[("synergy", "")] == pytest.approx(0.189, abs=0.04)


def test_results_commands(quick_start):
    assert "rine" in output_of(quick_start, "usable results ls")
    assert "redundant_information" in output_of(quick_start, "usable results show")
