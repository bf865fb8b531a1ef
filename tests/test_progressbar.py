"""Progress in logs: plain lines (never carriage-return frames), at most one per tenth of the work
or per 30 s, none closer than 2 s but the last; and silence when progress is off or quiet."""
import io

import pytest

from usable import progressbar
from usable.progressbar import _Lines, progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def run(n_updates, seconds_each, total, stop_at=None):
    """Drive a _Lines bar with a fake clock; return the lines it wrote."""
    clock, out = Clock(), io.StringIO()
    bar = _Lines(range(n_updates), "dib: decoders 1/4", total, clock=clock, file=out)
    for i in bar:
        if stop_at is not None and i == stop_at:
            break
        clock.t += seconds_each
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    return text.splitlines()


def counts(lines):
    return [int(line.rsplit(": ", 1)[1].split("/")[0]) for line in lines]


def test_slow_loop_prints_every_tenth():
    lines = run(100, 1.0, None)  # total from len(range)
    assert counts(lines) == list(range(10, 101, 10))
    assert lines[0] == "dib: decoders 1/4: 10/100 (10%)  10.0s"
    assert lines[-1] == "dib: decoders 1/4: 100/100 (100%)  100.0s"


def test_fast_loop_prints_only_its_last_line():
    assert run(1000, 0.001, 1000) == ["dib: decoders 1/4: 1000/1000 (100%)  1.0s"]


def test_long_tenths_are_broken_by_a_line_every_30_seconds():
    lines = run(10_000, 0.125, 10_000)  # 1250 s in all: a tenth takes 125 s
    gaps = [b - a for a, b in zip([0] + counts(lines), counts(lines))]
    assert all(g == 240 for g in gaps[:-1])  # 240 updates of 0.125 s = 30 s
    assert counts(lines)[-1] == 10_000 and len(lines) == 42


def test_unknown_total_prints_every_30_seconds_and_at_the_end():
    clock, out = Clock(), io.StringIO()
    bar = _Lines(iter(range(100)), "nc pass 1", None, unit="batch", clock=clock, file=out)
    for _ in bar:
        clock.t += 1.0
    assert out.getvalue().splitlines() == ["nc pass 1: 30 batch  30.0s", "nc pass 1: 60 batch  60.0s",
                                           "nc pass 1: 90 batch  90.0s", "nc pass 1: 100 batch  100.0s"]


def test_an_early_stop_ends_with_the_count_reached():
    lines = run(30, 5.0, None, stop_at=12)  # 3 epochs = a tenth, 15 s apart
    assert counts(lines) == [3, 6, 9, 12]
    assert lines[-1].startswith("dib: decoders 1/4: 12/30 (40%)  60.0s")


def test_postfix_and_manual_updates():
    clock, out = Clock(), io.StringIO()
    bar = _Lines(None, "sweep", 4, unit="cell", clock=clock, file=out)
    for _ in range(4):
        clock.t += 10
        bar.set_postfix(loss="0.1234")
        bar.update()
    bar.close()
    assert out.getvalue().splitlines()[-1] == "sweep: 4/4 cell (100%)  40.0s  loss=0.1234"
    assert len(out.getvalue().splitlines()) == 4


@pytest.mark.parametrize("enabled,level", [(False, 1), (True, 0)])
def test_off_or_quiet_writes_nothing(capsys, monkeypatch, enabled, level):
    monkeypatch.setitem(progressbar.VERBOSITY, "level", level)
    bar = progress(range(5), desc="fit", enabled=enabled)
    assert list(bar) == list(range(5))
    bar.close()
    assert capsys.readouterr().err == ""


def test_a_pipe_gets_lines_not_a_tqdm_bar(capsys):
    bar = progress(range(3), desc="fit")  # pytest's captured stderr is not a terminal
    assert isinstance(bar, _Lines)
    assert list(bar) == [0, 1, 2]
    err = capsys.readouterr().err
    assert err.startswith("fit: 3/3 (100%)") and "\r" not in err and err.count("\n") == 1
