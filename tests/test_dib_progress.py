"""`usable run dib` reports every long step: the main network and each decoder fit, as plain lines
when stderr is a pipe or a log file (never tqdm's carriage-return frames), and nothing with
--no-progress or -q."""
import subprocess
import sys
from pathlib import Path

import pytest

USABLE = str(Path(sys.executable).with_name("usable"))
DIB = ["run", "dib:layers=0+1+2,dib_epochs=2", "--source", "digits", "--decoder", "mlp:hidden=32+16",
       "--epochs", "1", "--threads", "1"]


def usable(*args):
    out = subprocess.run([USABLE, *args], capture_output=True, text=True, timeout=300)  # stderr: a pipe
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def shown():
    return usable(*DIB)


def test_each_decoder_fit_has_a_numbered_line(shown):
    err = shown.stderr
    assert "\r" not in err and "\x1b" not in err  # no tqdm frames, no terminal escapes
    lines = err.splitlines()
    fits = [ln for ln in lines if ": decoders " in ln]
    expected = [f"dib seed 0: decoders {i}/4 ({q}, {s} split, layers 0-2): 2/2 (100%)"
                for i, (q, s) in enumerate([("sufficiency", "train"), ("minimality", "train"),
                                            ("sufficiency", "test"), ("minimality", "test")], 1)]
    # a two-epoch fit of a second or less prints its last line only, with the time and the loss
    assert [ln.split("  ")[0] for ln in fits] == expected
    assert all(" loss=" in ln and ln.split("  ")[1].endswith("s") for ln in fits)
    assert lines[0].startswith("dib: main network, seed 0: 1/1 (100%)")
    assert "sufficiency" in shown.stdout  # the table still goes to stdout, the progress to stderr
    assert "decoders" not in shown.stdout


@pytest.mark.parametrize("flags", [["--no-progress"], ["-q"]])
def test_no_progress_and_quiet_are_silent(flags, monkeypatch):
    from click.testing import CliRunner

    from usable import progressbar
    from usable.cli import make_cli
    monkeypatch.setitem(progressbar.VERBOSITY, "level", 1)  # -q sets it for the process; restored after
    args = [*flags, *DIB] if flags == ["-q"] else [*DIB, *flags]
    out = CliRunner().invoke(make_cli(), args, catch_exceptions=False)  # in-process: no second start-up
    assert out.exit_code == 0
    assert "decoders" not in out.stderr and "main network" not in out.stderr
    assert "sufficiency" in out.stdout
