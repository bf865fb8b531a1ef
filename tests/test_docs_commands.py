"""Every command of docs/*.md and of the README's "Examples" table, run as written, its printed
headline value held to the number the document states.

Each test (1) takes its commands from constants that `test_every_fenced_command_is_here` and
`test_every_table_command_is_here` check against the documents themselves (the fenced blocks
must list exactly these commands, in this order, and every command in a table row must be one of
them), so a document and this file cannot drift apart; (2) runs them through the CLI in a fresh
working directory (`--threads 1` added to `run` and `sweep`, `--executor serial` to `sweep`);
(3) asserts the value the document states for the command, read from the document where it is
a table or a list of numbers, or, where it states none, something that would fail if the
command did not do what the text says (the variables and dims, a non-blank PNG, exported rows).

Covered elsewhere, so not here: README's quick start (test_readme.py), docs/results.md
(test_results_query.py), CONTRIBUTING.md (test_contributing.py), `usable run --config
rine-table-a5` (test_rine_tables.py), the fig-5 table of docs/rine-targets.md
(test_synthetic_cosine.py). Commands longer than ~20 s on one thread are marked `slow`
(`make repro`); commands that need what cannot exist here are skipped with the reason.
"""
import importlib.util
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from click.testing import CliRunner

from usable import get_entry, open_results, parse_spec
from usable.cli import make_cli

ROOT = Path(__file__).resolve().parents[1]


def text(doc: str) -> str:
    return (ROOT / doc).read_text()


# ---------------------------------------------------------------------------------------------
# The documents' commands

def fenced_commands(doc: str) -> list[str]:
    """The shell commands in the fenced bash/sh/plain blocks of ``doc``: continuation lines joined,
    trailing comments dropped, only lines that start with `usable `, `python ` or an env var."""
    out = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text(doc), flags=re.S):
        if lang not in ("", "bash", "sh"):
            continue
        for line in re.sub(r"\\\n\s*", "", body).splitlines():
            line = line.split("  #")[0].strip()
            if re.match(r"(usable |python |[A-Z_]+=\S+ usable )", line):
                out.append(line)
    return out


def table_commands(doc: str, start: str = "", end: str = "") -> list[str]:
    """The `usable ...` / `python ...` inline code in the table rows of ``doc`` (or of a section)."""
    body = text(doc)
    if start:
        body = body[body.index(start):body.index(end) if end else None]
    rows = [li for li in body.splitlines() if li.startswith("|")]
    return [c for li in rows for c in re.findall(r"`((?:usable|python) [^`]+)`", li)]


README_EXAMPLES = ("## Examples", "Image data is read")

# docs/dib-tracking.md
DIB = "usable run dib --source digits --decoder cnn_minus --epochs 10 --optimizer adamw --lr 2e-3"
DIB_SAVE = "usable run nc:save=cnn.pt --source digits --decoder cnn_minus --epochs 10"
DIB_CHECKPOINT = "usable run dib:checkpoint=cnn.pt --source digits --decoder cnn_minus"
TRACK_MLP = 'usable run "track:max_epochs=50,every=1" --source digits --decoder mlp:hidden=64+32 --store r.zarr'
TRACK_DIGITS = "usable run --config track-digits"
TRACK_PLOT = "usable results plot results/track-digits.zarr"
# docs/neural-collapse.md
NC = "usable run nc --source digits --decoder cnn_minus --epochs 3 --store results/nc.zarr"
NC_SHOW = "usable results show results/nc.zarr"
NC_PLOT = "usable results plot results/nc.zarr -o nc.png"
NC_SAVE = "usable run nc:save=cnn.pt --source digits --decoder cnn_minus --epochs 3"
NC_CHECKPOINT = "usable run nc:checkpoint=cnn.pt --source digits --decoder cnn_minus"
# docs/neural.md
FIG3 = "usable run --config neural-fig3 --store results/neural.zarr"
FIG4_SESSIONS = "usable run --config neural-fig4-sessions --store results/neural.zarr"
FIG4_AREAS = "usable run --config neural-fig4-areas --store results/neural.zarr"
FIG4_M1 = ("usable run --config neural-fig4-sessions --source 'centre_out:sessions=3,areas=M1,window=100:400' "
           "--store results/neural.zarr")
NEURAL_LS = "usable results ls results/neural.zarr"
NEURAL_PLOT = "usable results plot results/neural.zarr RUN -o fig.png"
SIMULATE = "usable neural simulate out/ --sessions 3"
NWB_FIG4_RIGHT = "--source 'nwb:file=J1.nwb+J2.nwb+R1.nwb,group_by=location,groups=M1,window=100:400,condition=success'"
NWB_FIG3 = ("usable run --config neural-fig3 --source 'nwb:file=jenkins.nwb,event=target_on_time,window=50:450:100,"
            "condition=success,target=target_pos,bins=8' --seed 0-4 --store results/neural.zarr")
# docs/plots.md
PLOTS = [
    "usable results plot results/r.zarr RUN -o r.png",
    "usable results plot results/r.zarr RUN --kind all -o all.png",
    "usable results plot results/r.zarr RUN --kind training",
    "usable results plot results/r.zarr RUN --kind heatmap",
    "usable results plot results/r.zarr RUN --sel task=rdnxor --var redundant_information",
]
MAKE_IMAGES = "python docs/img/make_images.py"
MAKE_IMAGES_QUICK = "--epochs 3 --out /tmp/img"
# docs/rine-targets.md
RDN3 = "usable run rine --source pid:task=rdn3 --decoder linear --beta 15 --divergence-form consensus"
GAUSS = ("usable run rine --source gaussian:mode=transform,sigma=0.5,n=20000 --decoder linear --divergence mean_sq "
         "--schedule exp:gamma=0.7 --beta 15 --seed 0-1 --epochs 10 --optimizer adam --lr 0.1 --lr-decay 0.9 "
         "--batch-size 512 --weight-decay 0")
PVI = "usable run usable --source pid:task=and --decoder linear --store results/pvi.zarr"
PVI_PRINT = "python -c \"import usable; r = usable.open_results('results/pvi.zarr'); print(r[r.runs[-1]].pvi)\""
FIG5 = ("usable run rine --source synthetic:n=8,noise=50 --decoder linear --divergence l1:reduction=mean "
        "--schedule exp:gamma=0.7 --beta 15 --epochs 15 --optimizer adam --lr 0.05 --lr-decay 0.9 --weight-decay 0")
COSINE = "usable run cosine --source synthetic:n=8,noise=50"
# docs/sweeps.md
SWEEP_A5 = ("usable sweep rine --source pid:task=rdnxor --decoder mlp --epochs 30 "
            "--grid source.task=unq,and,rdnxor,imperfectrdn --grid beta=0,15,50 --grid seed=0-4 "
            "--store results/table-a5.zarr --workers 4")
SWEEP_A5_SHOW = "usable results show results/table-a5.zarr --sel beta=50 --mean seed"
SWEEP_A5_PLOT = "usable results plot results/table-a5.zarr -o table-a5.png"
SWEEP_QUERIES = [
    "usable results show results/sweep.zarr SWEEP --sel beta=15 --mean seed",
    "usable results show results/sweep.zarr SWEEP --sel source_task=and --mean seed",
    "usable results export results/sweep.zarr SWEEP sweep.csv",
    "usable results plot results/sweep.zarr SWEEP -o sweep.png",
]
SWEEP_SLURM = "usable sweep --config sweep.toml --scheduler tcp://SCHEDULER_HOST:8786"
SWEEP_TOML = "usable sweep --config sweep.toml"
SWEEP_DRY = "usable sweep ... --dry-run"
# docs/vision.md
CROPS4 = "usable run --config crops-digits --source digits:view=crops,width=4"
CHANNELS_CUDA = ("usable run rine:per_class=true --source cifar10:view=channels,a=red,b=blue --decoder resnet18 "
                 "--beta 50 --divergence l1:reduction=mean --device cuda")
CROPS_SWEEP = "usable sweep --config crops-digits --store results/crops-digits.zarr"
CROPS_PLOT = "usable results plot results/crops-digits.zarr -o crops-digits.png"
TINY = "python -c \"from usable_vision.fixtures import write_cifar10; write_cifar10('/tmp/tiny')\""
TINY_RUN = ("USABLE_DATA=/tmp/tiny usable run --config crops-cifar10 "
            "--source cifar10:view=crops,width=16,verify=false --epochs 1 --seed 0")
# README.md, the Examples table
A5 = "usable run --config rine-table-a5"                       # tests/test_rine_tables.py
RDN3_50 = "usable run rine --source pid:task=rdn3 --beta 50 --divergence-form consensus"
CROPS_README = "usable sweep --config crops-digits --store results/crops.zarr"
CROPS_README_PLOT = "usable results plot results/crops.zarr"
PER_CLASS = "usable run rine:per_class=true --source cifar10:view=crops,width=20 --decoder resnet18 --beta 50"
NEURAL_README = ["usable run --config neural-fig3"]           # + the neural-fig4-* names, docs/neural.md
NWB_README = "--source nwb:file=a.nwb,window=50:450:100"
GAUSS_COPY = "usable run rine --source gaussian:mode=copy,sigma=0.5 --decoder linear --divergence mean_sq --beta 15"
TRACK_KIND = "usable results plot STORE RUN --kind nc1"
README_TRACK_KINDS = ("`equisep`, `gap`, `dib`, `plane`",)

FENCED = {
    "docs/dib-tracking.md": [DIB, DIB_SAVE, DIB_CHECKPOINT, TRACK_MLP, TRACK_DIGITS, TRACK_PLOT],
    "docs/neural-collapse.md": [NC, NC_SHOW, NC_PLOT, NC_SAVE, NC_CHECKPOINT],
    "docs/neural.md": [NWB_FIG3],
    "docs/plots.md": PLOTS,
    "docs/rine-targets.md": [RDN3, GAUSS, PVI, PVI_PRINT, FIG5, COSINE],
    "docs/sweeps.md": [SWEEP_A5, SWEEP_A5_SHOW, SWEEP_A5_PLOT, *SWEEP_QUERIES, SWEEP_SLURM],
    "docs/vision.md": [CROPS4, CHANNELS_CUDA, CROPS_SWEEP, CROPS_PLOT, TINY, TINY_RUN],
}
TABLES = {
    "docs/neural.md": [FIG3, FIG4_SESSIONS, FIG4_AREAS, FIG4_M1],
    "README.md": [A5, RDN3_50, CROPS_README, CROPS_README_PLOT, PER_CLASS, *NEURAL_README, FIG5, COSINE, GAUSS_COPY,
                  TRACK_DIGITS, TRACK_KIND, NC],
}
# commands in the prose, in inline code: each must appear verbatim
PROSE = {
    "docs/neural.md": [NEURAL_LS, NEURAL_PLOT, SIMULATE, NWB_FIG4_RIGHT],
    "docs/plots.md": [MAKE_IMAGES, MAKE_IMAGES_QUICK],
    "docs/sweeps.md": [SWEEP_TOML, SWEEP_DRY],
    "README.md": [NWB_README, *README_TRACK_KINDS],
}


def test_every_fenced_command_is_here():
    for doc, commands in FENCED.items():
        assert fenced_commands(doc) == commands, doc


def test_every_table_command_is_here():
    for doc, commands in TABLES.items():
        found = table_commands(doc, *README_EXAMPLES) if doc == "README.md" else table_commands(doc)
        assert found == commands, doc
    for doc in FENCED:
        if doc not in TABLES:
            assert table_commands(doc) == [], doc  # a table command added there needs its test here


def test_every_prose_command_is_in_its_document():
    for doc, snippets in PROSE.items():
        for s in snippets:
            assert s in text(doc), (doc, s)


# ---------------------------------------------------------------------------------------------
# Running them

def usable(command: str, *, expect: int = 0, flagged: bool = False) -> str:
    """Run a documented `usable ...` command (an optional leading VAR=value sets the environment)
    in the current directory, one torch thread; returns what it printed. No documented command may
    trip a guard (a "warning: <variable> = ..." line) unless the test says it shows one."""
    args = shlex.split(command)
    env = {}
    while args[0] != "usable":
        key, value = args.pop(0).split("=", 1)
        env[key] = value
    args = args[1:]
    if args[0] in ("run", "sweep"):
        args += ["--threads", "1"]
    if args[0] == "sweep" and "--executor" not in args and "--scheduler" not in args:
        args += ["--executor", "serial"]
    res = CliRunner().invoke(make_cli(), args, env=env or None)
    assert res.exit_code == expect, (command, res.output, res.exception)
    tripped = re.findall(r"^warning: \w+ = .*$", res.output, flags=re.M)
    assert flagged or not tripped, (command, tripped)
    return res.output


def python(command: str, cwd: Path) -> str:
    """A documented `python ...` command, run by this interpreter in ``cwd``."""
    args = shlex.split(command)
    assert args[0] == "python"
    out = subprocess.run([sys.executable, *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (command, out.stdout[-2000:], out.stderr[-3000:])
    return out.stdout


def table(output: str) -> list[dict[str, str]]:
    """The cells of a printed result table, by its right-aligned header columns (as test_readme)."""
    lines = output.splitlines()
    head = next(i for i, li in enumerate(lines) if li.strip().startswith("variable"))
    names = lines[head].split()
    ends = [m.end() for m in re.finditer(r"\S+", lines[head])]
    spans = list(zip([0] + ends[:-1], ends))
    out = []
    for li in lines[head + 1:]:
        if (not re.match(r"\s*[a-z_0-9]+ ", li) or li.startswith(("stored", "warning", "wrote"))
                or li.startswith("redundant information (")):
            break
        out.append({n: li[a:b].strip() for n, (a, b) in zip(names, spans)})
    return out


def _same(cell: str, want) -> bool:
    try:
        return float(cell) == float(want)
    except ValueError:
        return cell == str(want)


def value(output: str, variable: str, **where) -> float:
    """The printed mean of ``variable`` in the row whose columns equal ``where``."""
    hits = [c for c in table(output) if c["variable"] == variable and all(_same(c[k], v) for k, v in where.items())]
    assert len(hits) == 1, (variable, where, hits)
    return float(hits[0]["mean"]) if hits[0]["mean"] else math.nan


def printed_path(output: str) -> Path:
    return Path(re.search(r"^wrote (.+)$", output, flags=re.M).group(1))


def assert_png(path, min_bytes=10_000):
    """A PNG with something drawn on it: big enough, and not one flat colour."""
    path = Path(path)
    assert path.stat().st_size > min_bytes, path
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    assert img[..., :3].std() > 0.05, f"{path} is blank"


def numbers(s: str) -> list[float]:
    return [float(v.replace("−", "-")) for v in re.findall(r"[−-]?\d+\.\d+", s)]


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------------------------------
# README.md, the Examples table (the rows not run under another document below)

def test_readme_rdn3_consensus_is_one_bit(here):
    """'RINE n sources (App. C.8)': '(≈ 1 bit)', the exact I∩ of rdn3."""
    assert "`" + RDN3_50 + "` (≈ 1 bit)" in text("README.md")
    out = usable(RDN3_50)
    assert value(out, "redundant_information", beta=50) == pytest.approx(1.0, abs=0.02)  # 0.9997 measured


def test_readme_gaussian_copy(here):
    """Continuous targets: copy, σ = 0.5, whose I∩ is ½·log2(1 + 1/σ²) = 1.161 bit
    (docs/rine-targets.md's table); default 10,000 samples, 2,000 held out, so the held-out
    sampling error is ~1 bit/√2000 ≈ 0.02 (measured 1.158, CI 1.10–1.22)."""
    truth = float(re.search(r"\| copy, σ = 0\.5 \| ([\d.]+) \|", text("docs/rine-targets.md")).group(1))
    assert truth == pytest.approx(0.5 * math.log2(1 + 1 / 0.25), abs=5e-4)
    out = usable(GAUSS_COPY)
    assert value(out, "redundant_information", beta=15) == pytest.approx(truth, abs=0.04)
    assert value(out, "usable_information", source="x1") == pytest.approx(truth, abs=0.04)


def test_readme_fig5_and_cosine(here):
    """'RINE fig. 5' (also the fig.-5 commands of docs/rine-targets.md): the command's RINE value
    as the README states it (3 decimals; seeds 0-2 agree to 1e-4), within 0.1 bit of the 3-bit
    truth (rine-targets: 'stays within 0.1 bit'); cosine near the table's 0.004 for n = 8 with 50
    noise units (cosine over 2,000 test samples: sampling sd ≈ 0.0016; 0.0053 measured here with
    the default 10,000 samples, 0.0040 with the table's 4,000)."""
    stated = float(re.search(r"--weight-decay 0` \(≈ ([\d.]+) of 3 bits\)", text("README.md")).group(1))
    out = usable(FIG5)
    got = value(out, "redundant_information", beta=15)
    assert got == pytest.approx(stated, abs=0.001)
    assert abs(got - 3.0) < 0.1
    row = re.search(r"\| 8 \| noise=50 \| 3\.000 \| [\d.]+ \([\d.]+\) \| ([\d.]+) \|", text("docs/rine-targets.md"))
    cos = value(usable(COSINE), "cosine_similarity")
    assert cos == pytest.approx(float(row.group(1)), abs=0.003)


@pytest.fixture
def tiny_cifar(tmp_path):
    from usable_vision.fixtures import write_cifar10
    root = tmp_path / "data"
    write_cifar10(root)
    return root


def test_readme_fig_a3_views(tiny_cifar):
    """'RINE fig. A3 views': each spec gives its two aligned sources (the CIFAR-10 ones on the
    fixture writer's copy, with verify=false since it is not the official release)."""
    row = next(li for li in text("README.md").splitlines() if li.startswith("| RINE fig. A3 views"))
    specs = re.findall(r"`([^`]+)`", row)
    assert specs == ["digits:view=crops,width=4", "cifar10:view=channels,a=red,b=blue", "cifar10:view=frequency,cutoff=8"]
    want = {"crops": ["left", "right"], "channels": ["red", "blue"], "frequency": ["low", "high"]}
    for spec in specs:
        s = parse_spec(spec)
        params = dict(s.params, **({"root": str(tiny_cifar), "verify": "false"} if s.name == "cifar10" else {}))
        d = get_entry("sources", s.name).create(params)
        assert d.names == want[s.params["view"]], spec
        assert d.train.xs[0].shape == d.train.xs[1].shape


@pytest.mark.slow
def test_readme_per_class_cifar10(here):
    """'RINE fig. 2C, per class', on a CIFAR-10 copy from the fixture writer (1 image per class
    and split: ResNet-18 on the CPU takes ~0.15 s per image and epoch; the README's command on the
    real data needs $USABLE_DATA): the per-class values, weighted by the test class frequencies,
    average to redundant_information (docs/vision.md)."""
    from usable_vision.fixtures import write_cifar10
    write_cifar10(here / "data", train_per_class=1, test_per_class=1)
    # fixture images (random, class-dependent brightness), a few per class: the guards' verdict on
    # them says nothing about the command on CIFAR-10, so they may fire
    out = usable(f"USABLE_DATA={here / 'data'} " + PER_CLASS.replace("width=20", "width=20,verify=false")
                 + " --store pc.zarr", flagged=True)
    ds = open_results("pc.zarr")[open_results("pc.zarr").runs[-1]]
    per = ds.redundant_information_per_class.sel(beta=50.0)
    assert per.sizes["class"] == 10 and ds.class_name.size == 10
    freq = np.full(10, 0.1)  # one test image per class
    np.testing.assert_allclose((per * freq).sum("class").values, ds.redundant_information.sel(beta=50.0).values,
                               atol=1e-6)
    assert "redundant_information" in out


# ---------------------------------------------------------------------------------------------
# docs/neural-collapse.md (its first command is also the README's last example)

def test_neural_collapse_commands(here):
    out = usable(NC)
    assert "stored as run" in out
    show = usable(NC_SHOW)
    cells = table(show)
    # "nc1, trace_quotient, cdnv, NC2-4 per layer × split"
    assert {"nc1", "trace_quotient", "cdnv_mean", "nc2_etf_error", "nc3", "nc4"} <= {c["variable"] for c in cells}
    assert {(c["layer"], c["split"]) for c in cells if c["variable"] == "nc1"} == {
        (layer, split) for layer in ("block1", "block2", "block3", "head") for split in ("train", "test")}
    # the shown table is the run's: the same values `usable run` printed
    assert value(show, "nc1", layer="block3", split="test") == value(out, "nc1", layer="block3", split="test")
    for layer in ("block1", "block2", "block3", "head"):  # collapse deepens along the network
        assert 0 < value(show, "nc1", layer=layer, split="train") < 1.5
    assert value(show, "nc1", layer="block3", split="train") < value(show, "nc1", layer="block1", split="train")
    assert math.isnan(value(show, "nc3", layer="block1", split="train"))   # NC3 only where the classifier is fed
    assert value(show, "nc3", layer="block3", split="train") > 0
    assert "wrote nc.png" in usable(NC_PLOT)
    assert_png("nc.png")
    saved = usable(NC_SAVE)
    assert Path("cnn.pt").stat().st_size > 10_000
    again = usable(NC_CHECKPOINT)  # "measure them again": the same weights give the same NC, row by row
    assert table(again) == table(saved)


# ---------------------------------------------------------------------------------------------
# docs/neural.md

def _measured(config: str) -> str:
    return next(li for li in text("docs/neural.md").splitlines() if li.startswith(f"| `{config}"))


def _matrix(out: str, names: list[str]) -> np.ndarray:
    return np.array([[value(out, "redundant_information", source_a=a, source_b=b) for b in names] for a in names])


def _off_diagonal(m):
    return m[~np.eye(len(m), dtype=bool)]


TWO = 0.006  # the table's 2 decimals (±0.005), plus float noise


def test_neural_configs_and_their_table(here):
    """The four config commands of the table 'The paper's figures as commands', against
    'Measured with the configs' (2 decimals); then `results ls` and the heatmap."""
    windows = ["50:150ms", "150:250ms", "250:350ms", "350:450ms"]
    m = _matrix(usable(FIG3), windows)
    row = _measured("neural-fig3.toml")
    diag, adjacent, two, three = (numbers(part) for part in re.split(r"; ", row.split("|")[2]))
    np.testing.assert_allclose(np.diag(m), diag, atol=TWO)
    np.testing.assert_allclose([m[i, i + 1] for i in range(3)], adjacent, atol=TWO)
    np.testing.assert_allclose([m[0, 2], m[1, 3]], two, atol=TWO)
    np.testing.assert_allclose([m[0, 3]], three, atol=TWO)
    # "measured 1.02 vs 0.53" (tests/test_neural_matrix.py's adjacent mean vs three apart)
    stated = re.search(r"more than 0\.2 bit \(measured ([\d.]+) vs ([\d.]+);", text("docs/neural.md"))
    assert np.mean([m[i, i + 1] for i in range(3)]) == pytest.approx(float(stated.group(1)), abs=TWO)
    assert m[0, 3] == pytest.approx(float(stated.group(2)), abs=TWO)

    sessions = ["session1", "session2", "session3"]
    row = _measured("neural-fig4-sessions.toml").split("|")[2]
    pmd, m1 = row.split("with `--source")
    m = _matrix(usable(FIG4_SESSIONS), sessions)
    want = numbers(pmd)
    np.testing.assert_allclose(np.diag(m), want[:3], atol=TWO)
    assert _off_diagonal(m).min() == pytest.approx(want[3], abs=TWO)
    assert _off_diagonal(m).max() == pytest.approx(want[4], abs=TWO)
    m = _matrix(usable(FIG4_M1), sessions)
    want = numbers(m1)
    np.testing.assert_allclose(np.diag(m), want[:3], atol=TWO)
    assert _off_diagonal(m).min() == pytest.approx(want[3], abs=TWO)
    assert _off_diagonal(m).max() == pytest.approx(want[4], abs=TWO)

    m = _matrix(usable(FIG4_AREAS), ["PMd", "M1"])
    pmd, m1, cross = numbers(_measured("neural-fig4-areas.toml").split("|")[2])
    np.testing.assert_allclose([m[0, 0], m[1, 1], m[0, 1]], [pmd, m1, cross], atol=TWO)

    listed = usable(NEURAL_LS)
    res = open_results("results/neural.zarr")
    assert len(res.runs) == 4 and all(r in listed for r in res.runs)
    (fig3,) = (r for r in res.runs if res[r].sizes["source_a"] == 4)
    out = usable(NEURAL_PLOT.replace("RUN", fig3))  # the window matrix, as a heatmap
    assert "wrote fig.png" in out
    assert_png("fig.png")


def test_neural_beta_dependence(here):
    """'the shared part is 0.89 bit at β = 50, 0.42 bit at β = 80 and 0.16 bit at β = 100 (linear
    decoders, seeds 0-1)': the fig4-areas config at those βs."""
    stated = re.search(r"the shared part\s+is ([\d.]+) bit at β = 50.*?([\d.]+) bit at β = 80\s+and ([\d.]+) bit at "
                       r"β = 100", text("docs/neural.md"), flags=re.S)
    out = usable("usable run --config neural-fig4-areas --beta 50,80,100", flagged=True)
    got = [value(out, "redundant_information", source_a="PMd", source_b="M1", beta=b) for b in (50, 80, 100)]
    np.testing.assert_allclose(got, [float(v) for v in stated.groups()], atol=TWO)
    # '(above M1's own 0.61: the two decoders do not yet agree)': the guard says so at β = 50 only
    (warning,) = re.findall(r"^warning: redundant_information = .*$", out, flags=re.M)
    assert "beta=50.0" in warning and "beta=80.0" not in warning and "beta=100.0" not in warning, warning
    assert "above the smallest source" in warning, warning


@pytest.mark.slow
def test_neural_fig3_other_simulation_seeds(here):
    """'for simulation seeds 1-3: 0.98 vs 0.42, ...': adjacent-window mean vs three apart."""
    stated = re.search(r"for simulation seeds 1-3: ([^)]*)\)", text("docs/neural.md")).group(1)
    pairs = np.array(numbers(stated)).reshape(3, 2)
    windows = ["50:150ms", "150:250ms", "250:350ms", "350:450ms"]
    for seed, (adjacent, three) in zip((1, 2, 3), pairs):
        m = _matrix(usable(f"usable run --config neural-fig3 --source centre_out:areas=PMd,window=50:450:100,"
                           f"seed={seed}"), windows)
        assert np.mean([m[i, i + 1] for i in range(3)]) == pytest.approx(adjacent, abs=TWO), seed
        assert m[0, 3] == pytest.approx(three, abs=TWO), seed


@pytest.mark.slow
def test_neural_on_nwb_files(here):
    """`usable neural simulate out/ --sessions 3` writes NWB files the `nwb` source reads 'exactly
    like a recording': the README's and docs/neural.md's NWB commands on them. Figure 4 right on
    three simulated sessions (M1) is the centre_out M1 variant of the table, number for number."""
    assert "wrote out/session3.nwb" in usable(SIMULATE)
    files = sorted(p.name for p in Path("out").iterdir())
    assert files == ["session1.nwb", "session2.nwb", "session3.nwb"]
    shutil.copy("out/session1.nwb", "jenkins.nwb")
    for name, session in (("a", 1), ("b", 2), ("J1", 1), ("J2", 2), ("R1", 3)):
        shutil.copy(f"out/session{session}.nwb", f"{name}.nwb")

    windows = ["50:150ms", "150:250ms", "250:350ms", "350:450ms"]
    m = _matrix(usable(NWB_FIG3), windows)  # docs/neural.md: figure 3 on a recording
    np.testing.assert_allclose(m, m.T)
    assert np.all(np.diag(m) > 0.5)
    m = _matrix(usable(f"{NEURAL_README[0]} {NWB_README}"), windows)  # README: fig. 3 on your NWB files
    assert np.all(np.diag(m) > 0.5)

    m = _matrix(usable(f"usable run --config neural-fig4-sessions {NWB_FIG4_RIGHT}"), ["J1", "J2", "R1"])
    want = numbers(_measured("neural-fig4-sessions.toml").split("with `--source")[1])
    np.testing.assert_allclose(np.diag(m), want[:3], atol=TWO)
    assert _off_diagonal(m).min() == pytest.approx(want[3], abs=TWO)
    assert _off_diagonal(m).max() == pytest.approx(want[4], abs=TWO)

    # the spec of '`nwb`: spike counts around a trial event': 2 sessions × 2 areas × 2 windows
    block = re.search(r"```\n(nwb:file=a\.nwb.*?)```", text("docs/neural.md"), flags=re.S).group(1)
    spec = parse_spec(re.sub(r"\s+", "", block))
    d = get_entry("sources", "nwb").create(spec.params)
    assert d.names == [f"{s}/{g}/{w}" for s in "ab" for g in ("PMd", "M1") for w in ("50:150ms", "150:250ms")]
    assert d.n_classes == 8


# ---------------------------------------------------------------------------------------------
# docs/plots.md

def _make_images():
    spec = importlib.util.spec_from_file_location("make_images", ROOT / "docs" / "img" / "make_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plots_commands(here):
    """The plot commands on results/r.zarr, RUN being a run each command fits: the runs behind the
    page's images (docs/img/make_images.py: RINE on rdnxor at three βs, Table A5 for `--sel task=`,
    the fig-3 matrix for `--kind heatmap`), trained for 3 epochs."""
    for name, args in _make_images().RUNS.items():  # 3 epochs: under-trained on purpose, guards may fire
        usable(shlex.join(["usable", "run", *args, "--epochs", "3", "--store", "results/r.zarr", "--name", name]),
               flagged=True)
    runs = {"--kind heatmap": "matrix", "--sel task=": "table"}
    written = {}
    for command in PLOTS:
        run = next((r for key, r in runs.items() if key in command), "rine")
        out = usable(command.replace("RUN", run))
        written[command] = printed_path(out)
        assert_png(written[command])
    assert written[PLOTS[0]] == Path("r.png") and written[PLOTS[1]] == Path("all.png")
    assert written[PLOTS[2]].parent == Path("results")  # no -o: beside the store
    # `--kind all` draws every headline variable: more panels than the default's one
    assert mpimg.imread("all.png").size > mpimg.imread("r.png").size


def test_make_images_quick_check(tmp_path):
    """'`--epochs 3 --out /tmp/img` makes a quick check' (the out folder in a temp dir): the four
    images of the page, none of docs/img touched."""
    before = {p.name: p.stat().st_mtime_ns for p in (ROOT / "docs" / "img").glob("*.png")}
    out = python(f"{MAKE_IMAGES} {MAKE_IMAGES_QUICK.replace('/tmp/img', str(tmp_path / 'img'))}", ROOT)
    for name in ("rine-beta-sweep.png", "rine-training-curves.png", "rine-table-a5.png", "redundancy-matrix.png"):
        assert_png(tmp_path / "img" / name)
        assert f"{name}: " in out
    assert {p.name: p.stat().st_mtime_ns for p in (ROOT / "docs" / "img").glob("*.png")} == before


@pytest.mark.slow
def test_make_images_full(tmp_path):
    """`python docs/img/make_images.py` with the shipped settings ('under a minute on 2 CPU
    cores'); `--out` a temp dir, so that the test does not rewrite the committed images."""
    python(f"{MAKE_IMAGES} --out {tmp_path}", ROOT)
    for name in ("rine-beta-sweep.png", "rine-training-curves.png", "rine-table-a5.png", "redundancy-matrix.png"):
        assert_png(tmp_path / name)


# ---------------------------------------------------------------------------------------------
# docs/rine-targets.md (the fig-5 commands: test_readme_fig5_and_cosine)

def test_rine_targets_three_sources(here):
    """'`rdn3` 0.95–0.98 bit ... with both forms' (measured with l1 in test_three_sources.py; this
    command, with the default divergence, lands in the same range: 0.960)."""
    low, high = map(float, re.search(r"`rdn3` ([\d.]+)–([\d.]+) bit", text("docs/rine-targets.md")).groups())
    got = value(usable(RDN3), "redundant_information", beta=15)
    assert low <= got <= high


def test_rine_targets_gaussian_transform(here):
    """The transform command against the closed form the table states (1.161 bit). The table's
    1.153/1.151 are tests/test_gaussian.py's protocol (half held out, a = −2, b = 3); this command
    holds out the default 20 %, 4,000 samples: sampling error ≈ 1 bit/√4000 ≈ 0.016 (measured 1.144,
    its bootstrap CI 1.10–1.18)."""
    truth = float(re.search(r"\| transform \(a = −2, b = 3\), σ = 0\.5 \| ([\d.]+) \|",
                            text("docs/rine-targets.md")).group(1))
    out = usable(GAUSS)
    assert value(out, "redundant_information", beta=15) == pytest.approx(truth, abs=0.04)
    assert value(out, "divergence", beta=15) < 0.01  # the two means agree


def test_rine_targets_pvi(here):
    """`usable` stores pvi (seed, source, sample) whose mean over samples is usable_information
    exactly; the documented `python -c` prints it."""
    out = usable(PVI)
    printed = python(PVI_PRINT, here)
    assert "<xarray.DataArray 'pvi' (seed: 1, source: 2, sample: 2000)>" in printed
    assert "units:      bit" in printed
    res = open_results("results/pvi.zarr")
    ds = res[res.runs[-1]]
    np.testing.assert_allclose(ds.pvi.mean("sample").values, ds.usable_information.values, rtol=1e-9)
    stored = float(ds.usable_information.sel(source="x1").isel(seed=0))
    assert value(out, "usable_information", source="x1") == pytest.approx(stored, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# docs/sweeps.md

def test_sweep_toml_dry_run_and_queries(here):
    """The TOML sweep (`usable sweep --config sweep.toml`, its `--dry-run`), then the four querying
    commands and the Python lines on its store."""
    Path("sweep.toml").write_text(re.search(r"```toml\n(.*?)```", text("docs/sweeps.md"), flags=re.S).group(1))
    dry = usable(SWEEP_DRY.replace("...", "--config sweep.toml"))
    assert "45 cells in 3 tasks" in dry and not Path("results/sweep.zarr").exists()
    out = usable(SWEEP_TOML)
    assert re.search(r"^\s+45\s+3\s+45\s+0\s+0\s+0\s", out, flags=re.M), out  # cells tasks done skipped failed pending
    (name,) = open_results("results/sweep.zarr").runs
    flags = open_results("results/sweep.zarr")[name].flags.values.ravel()
    assert all(str(f) == "" for f in flags), sorted({str(f) for f in flags})  # no cell trips a guard
    by_beta, and_only, export, plot = (q.replace("SWEEP", name) for q in SWEEP_QUERIES)
    shown = usable(by_beta)
    assert "15 cells: 15 done, 0 failed, 0 pending" in shown  # 'adds a line with the number of ... cells'
    assert {c["source_task"] for c in table(shown)} == {"rdnxor", "and", "unq"}
    shown = usable(and_only)
    assert "15 cells: 15 done, 0 failed, 0 pending" in shown
    assert {float(c["beta"]) for c in table(shown)} == {0.0, 15.0, 50.0}
    usable(export)
    import pandas as pd
    csv = pd.read_csv("sweep.csv")
    # 45 cells × (redundant_information, divergence, usable_information of x1 and x2)
    assert len(csv) == 45 * 4 and set(csv.variable) == {"redundant_information", "divergence", "usable_information"}
    assert {"beta", "seed", "source_task", "value"} <= set(csv.columns)
    assert csv[csv.variable == "redundant_information"].groupby(["source_task", "beta"]).size().eq(5).all()
    assert printed_path(usable(plot)) == Path("sweep.png")
    assert_png("sweep.png")
    code = re.search(r"```python\n(import usable\nds = usable\.open_results.*?)```", text("docs/sweeps.md"),
                     flags=re.S).group(1)
    lines = code.replace('"SWEEP"', repr(name)).strip().splitlines()
    scope = {}
    exec("\n".join(lines[:-1]), scope)
    result = eval(lines[-1], scope)
    assert result.dims == ("source_task",) and result.sizes["source_task"] == 3
    assert float(result.sel(source_task="and")) == pytest.approx(value(shown, "redundant_information", beta=15),
                                                                abs=1e-4)


@pytest.mark.slow
def test_sweep_table_a5(here):
    """The first sweep (60 cells in 4 tasks; `--executor serial` added, which `--workers` then does
    not concern), then its query and plot: at β = 50 the tasks' known redundancies (unq 0, rdnxor 1)."""
    out = usable(SWEEP_A5)
    assert re.search(r"^\s+60\s+4\s+60\s+0\s+0\s+0\s", out, flags=re.M), out
    res = open_results("results/table-a5.zarr")
    flags = res[res.runs[-1]].flags.values.ravel()
    assert all(str(f) == "" for f in flags), sorted({str(f) for f in flags})  # no cell trips a guard
    shown = usable(SWEEP_A5_SHOW)
    assert "20 cells: 20 done, 0 failed, 0 pending" in shown
    assert value(shown, "redundant_information", source_task="rdnxor") == pytest.approx(1.0, abs=0.03)
    assert value(shown, "redundant_information", source_task="unq") == pytest.approx(0.0, abs=0.03)
    assert value(shown, "redundant_information", source_task="and") == pytest.approx(0.0, abs=0.03)
    assert printed_path(usable(SWEEP_A5_PLOT)) == Path("table-a5.png")
    assert_png("table-a5.png")


def test_sweep_on_slurm():
    pytest.skip("needs a dask scheduler at tcp://SCHEDULER_HOST:8786 (workers as Slurm jobs through "
                "dask-jobqueue); there is no cluster to reach here")


# ---------------------------------------------------------------------------------------------
# docs/vision.md (and the README's fig. 2B row)

def test_vision_crops_command(here):
    """The first command: 4-pixel crops of the 8×8 digits, no files: the crops-digits sweep's cell
    at width 4, so the page's table states its number; below the full image's own usable
    information (the crops share no column)."""
    cells = _crops_table()
    got = value(usable(CROPS4), "redundant_information", beta=50)
    assert got == pytest.approx(cells[4][0], abs=0.0006)
    assert got < cells["full"][0]


def _crops_table() -> dict:
    """width (or "full") -> (mean, sd) from docs/vision.md's crops-digits table."""
    lines = text("docs/vision.md").splitlines()
    i = next(k for k, li in enumerate(lines) if li.startswith("| width | 2 | 4 | 6 | 8 |"))
    heads = [c.strip() for c in lines[i].split("|")[2:-1]]
    cells = [c.strip() for c in lines[i + 2].split("|")[2:-1]]
    assert lines[i + 2].startswith("| I∩ |")
    return {(int(h) if h.isdigit() else "full"): tuple(numbers(c)) for h, c in zip(heads, cells)}


def test_crops_digits_sweep_and_table(here):
    """README's `usable sweep --config crops-digits --store results/crops.zarr` and its plot, then
    docs/vision.md's same sweep under another store name (a copy of the first: every cell is
    found done and skipped) and its plot. The table 'Measured with crops-digits' (3 decimals; the
    sweep is deterministic) and its 'full image, `usable`' column, with the config's training."""
    out = usable(CROPS_README)
    assert re.search(r"^\s+7\s+7\s+7\s+0\s+0\s+0\s", out, flags=re.M), out
    assert_png(printed_path(usable(CROPS_README_PLOT)))
    shutil.copytree("results/crops.zarr", "results/crops-digits.zarr")
    out = usable(CROPS_SWEEP)
    assert "all 7 cells already done" in out  # resumed: nothing to run (cells, tasks, done, skipped, ...)
    assert re.search(r"^\s+7\s+0\s+0\s+7\s+0\s+0\s", out, flags=re.M), out
    assert printed_path(usable(CROPS_PLOT)) == Path("crops-digits.png")
    assert_png("crops-digits.png")

    res = open_results("results/crops-digits.zarr")
    ri = res[res.runs[-1]].redundant_information.sel(beta=50.0)
    stated = _crops_table()
    for width in (2, 4, 6, 8):
        v = ri.sel(source_width=width)
        assert float(v.mean("seed")) == pytest.approx(stated[width][0], abs=0.001), width
        assert float(v.std("seed", ddof=1)) == pytest.approx(stated[width][1], abs=0.001), width
    full = usable("usable run usable:pvi=false --config crops-digits --source digits")
    assert value(full, "usable_information", source="digits") == pytest.approx(stated["full"][0], abs=0.001)
    # 'At w = 8 ... I∩ equals the usable information of the full image within 0.05 bit (slightly below)'
    within = float(re.search(r"full image\s+within ([\d.]+) bit \(slightly below", text("docs/vision.md")).group(1))
    assert 0 < stated["full"][0] - stated[8][0] < within
    # 'the largest held-out divergence is 0.019 (w = 4)': and no cell is flagged
    largest = float(re.search(r"largest held-out divergence is ([\d.]+) \(w = 4\)", text("docs/vision.md")).group(1))
    run = res[res.runs[-1]]
    assert float(run.divergence.sel(source_width=4).max()) == pytest.approx(largest, abs=0.0005)
    assert float(run.divergence.max()) < 0.02
    assert all(str(f) == "" for f in run.flags.values.ravel())


@pytest.mark.slow
def test_vision_tiny_cifar10(here):
    """'Tiny datasets in the published formats': the two commands, the folder in a temp dir."""
    tiny = str(here / "tiny")
    python(TINY.replace("/tmp/tiny", tiny), here)
    assert sorted(p.name for p in (here / "tiny" / "cifar-10-batches-py").iterdir()) == [
        "batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    out = usable(TINY_RUN.replace("/tmp/tiny", tiny), flagged=True)  # one epoch on fixture images: a smoke run
    assert math.isfinite(value(out, "redundant_information", beta=50))
    cells = {(c["variable"], c.get("source", "")) for c in table(out)}
    assert {("usable_information", "left"), ("usable_information", "right")} <= cells


@pytest.mark.slow
def test_vision_per_class_channels_on_cuda(here):
    import torch
    if not torch.cuda.is_available():
        pytest.skip("--device cuda: no CUDA device here (the command is run on the fixture writer's CIFAR-10 "
                    "copy where one is)")
    from usable_vision.fixtures import write_cifar10
    write_cifar10(here / "data")
    usable(f"USABLE_DATA={here / 'data'} " + CHANNELS_CUDA.replace("b=blue", "b=blue,verify=false")
           + " --store pc.zarr")
    ds = open_results("pc.zarr")[open_results("pc.zarr").runs[-1]]
    assert ds.redundant_information_per_class.sizes["class"] == 10


# ---------------------------------------------------------------------------------------------
# docs/dib-tracking.md (and the README's thesis row)

def _dims(ds, var):
    return set(ds[var].dims)


@pytest.mark.slow
def test_dib_commands(here):
    """`dib` after training, and `dib:checkpoint=` on weights kept by `nc:save=`: dims (seed, layer,
    split[, digit]); sufficiency at most H(Y) = log2 10 and near it for the raw input; the encoder
    compresses (minimality of the last layer below the input's)."""
    usable(DIB + " --store d.zarr")
    usable(DIB_SAVE)
    assert Path("cnn.pt").stat().st_size > 10_000
    usable(DIB_CHECKPOINT + " --store d.zarr")
    res = open_results("d.zarr")
    for run in res.runs:
        ds = res[run]
        assert _dims(ds, "sufficiency") == {"seed", "layer", "split"}
        assert "digit" in ds["minimality_digit"].dims
        suff = ds.sufficiency.isel(seed=0)
        assert float(suff.max()) <= math.log2(10) + 1e-6 and float(suff.sel(layer=0, split="train")) > 3.1
        mini = ds.minimality.isel(seed=0).sel(split="train")
        assert float(mini.isel(layer=-1)) < 0.5 * float(mini.sel(layer=0))
    assert "cnn.pt" in str(res[res.runs[-1]].attrs)


@pytest.mark.slow
def test_track_mlp(here):
    """`track` on an MLP: the dims the page lists, and the protocol's stop (loss <= 0.02 nat or
    50 epochs)."""
    usable(TRACK_MLP)
    ds = open_results("r.zarr")[open_results("r.zarr").runs[-1]]
    for var in ("nc1", "sufficiency", "minimality", "cross_entropy"):
        assert {"epoch", "layer", "split"} <= _dims(ds, var), var
    for var in ("loss", "accuracy"):
        assert {"epoch", "split"} <= _dims(ds, var) and "layer" not in _dims(ds, var), var
    assert {"epoch", "layer"} <= _dims(ds, "sufficiency_heldout") and "split" not in _dims(ds, "sufficiency_heldout")
    epochs = ds.sizes["epoch"]
    assert epochs == 50 or float(ds.loss.sel(split="train").isel(epoch=-1)) <= 0.02


@pytest.mark.slow
def test_track_digits_and_its_plots(here):
    """`usable run --config track-digits`, then the plot that 'writes six PNGs', then the README's
    `usable results plot STORE RUN --kind nc1` and the other kinds it names."""
    usable(TRACK_DIGITS)
    out = usable(TRACK_PLOT)
    pngs = [Path(p) for p in re.findall(r"^wrote (.+)$", out, flags=re.M)]
    assert len(pngs) == 6 and [p.stem.rsplit("-", 1)[1] for p in pngs] == ["nc1", "gap", "equisep", "dib", "plane",
                                                                           "curves"]
    for p in pngs:
        assert_png(p)
    run = open_results("results/track-digits.zarr").runs[-1]
    kinds = ["nc1", *re.findall(r"`(\w+)`", README_TRACK_KINDS[0])]
    for kind in kinds:
        cmd = TRACK_KIND.replace("STORE", "results/track-digits.zarr").replace("RUN", run).replace("nc1", kind)
        assert_png(printed_path(usable(cmd + f" -o {kind}.png")))


def test_track_thesis_scenarios():
    pytest.skip("track-cnn_{plus,minus}-{cifar10,fashion_mnist} need CIFAR-10 / Fashion-MNIST under $USABLE_DATA "
                "and, realistically, a GPU (docs/dib-tracking.md); neither is here")
