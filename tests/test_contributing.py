"""CONTRIBUTING.md's examples run as written: its plugin blocks, joined, make a real distribution
that the CLI loads and uses; its training-loop example runs as a script."""
import os
import re
import subprocess
import sys
from pathlib import Path

from thirdparty import build_distribution

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "CONTRIBUTING.md").read_text()


def _blocks(start: str, end: str) -> str:
    section = TEXT[TEXT.index(start):TEXT.index(end)]
    return "\n\n".join(re.findall(r"```python\n(.*?)```", section, flags=re.S))


def test_the_documented_plugin_installs_and_runs(tmp_path):
    code = _blocks("## Writing a plugin", "## The one training loop")
    root = build_distribution(tmp_path / "site", dist="usable-myplugin", package="usable_myplugin",
                              ep_name="myplugin", code=code)
    env = dict(os.environ, PYTHONPATH=str(root))
    exe = str(Path(sys.executable).with_name("usable"))

    def usable(*args):
        out = subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout
    listed = usable("list", "sources", "copy*", "-v")
    assert "n (int, default 2000): samples" in listed and "seed (int, default 0): seed of the draw" in listed
    out = usable("-q", "run", "agreement:scale=2", "--source", "copy_bits", "--decoder", "logistic", "--divergence",
                 "sqdiff", "--schedule", "half", "--epochs", "20", "--optimizer", "adam", "--lr", "0.05")
    value = float(next(line.split()[1] for line in out.splitlines() if line.split()[:1] == ["agreement"]))
    assert 1.9 <= value <= 2.02  # both sources copy one fair bit: 1 bit of redundancy, times 2
    assert usable("hello").strip() == "hello"
    assert "myplugin  (usable-myplugin 1.2.3" in usable("plugins")


def test_the_training_loop_example_runs():
    code = _blocks("## The one training loop", "## One run description")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    m = re.search(r"stopped after (\d+) epochs, (\d+) batches; held-out CE of x1: ([\d.]+) bit", out.stdout)
    assert m and int(m[1]) < 50
    # AND: H(Y|X1) = 0.5 bit exactly (X1 = 0 fixes Y = 0; X1 = 1 leaves a fair bit), plus sampling error
    assert abs(float(m[3]) - 0.5) < 0.05
