"""The ``nwb`` source on small NWB files written here with pynwb: binned counts against a direct
numpy count (spikes exactly on window edges included), angular targets, trial filters, session
pairing, and the errors for bad input."""
from datetime import datetime, timezone

import numpy as np
import pytest
import torch
from pynwb import NWBFile, NWBHDF5IO

from usable import create, format_spec
from usable_neural.recording import trial_features
from usable_neural.nwb_files import read_recording
from usable_neural.windows import parse_windows

WINDOWS_MS = [(0.0, 100.0), (100.0, 200.0)]


def write_nwb(path, trials, units):
    """trials: dict of columns (start_time, stop_time, ...); units: list of (spike_times, location)."""
    f = NWBFile(session_description="test", identifier=str(path),
                session_start_time=datetime(2021, 1, 1, tzinfo=timezone.utc))
    extra = [c for c in trials if c not in ("start_time", "stop_time")]
    for c in extra:
        f.add_trial_column(c, c)
    for i in range(len(trials["start_time"])):
        f.add_trial(start_time=float(trials["start_time"][i]), stop_time=float(trials["stop_time"][i]),
                    **{c: trials[c][i] for c in extra})
    f.add_unit_column("location", "brain area")
    for st, loc in units:
        f.add_unit(spike_times=np.asarray(st, dtype=float), location=loc)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(f)
    return path


def make_session(n_per_class=(2, 2, 2, 2), seed=0, nan_event=(), failed=()):
    """Trials 1 s apart, target onset 0.3 s into each; 4 targets at 0/90/180/270 degrees.
    Unit 0 (PMd) has spikes exactly on every window edge of every trial; units 1-2 are random."""
    rng = np.random.default_rng(seed)
    classes = np.concatenate([np.full(n, k) for k, n in enumerate(n_per_class)])
    classes = classes[rng.permutation(len(classes))]
    N = len(classes)
    start = np.arange(N) * 1.0
    onset = start + 0.3
    stop = start + 0.8
    event = onset.copy()
    event[list(nan_event)] = np.nan
    ang = np.deg2rad(90.0 * classes)
    pos = np.stack([3 * np.cos(ang), 3 * np.sin(ang)], axis=1)
    success = np.ones(N, dtype=bool)
    success[list(failed)] = False
    # Edges exactly as the source computes them: event + ms / 1000 in float64.
    edge_spikes = np.concatenate([[o + 0.0 / 1000, o + 100.0 / 1000, o + 200.0 / 1000] for o in onset])
    units = [(edge_spikes, "PMd"),
             (np.sort(rng.uniform(0, N, 40 * N)), "PMd"),
             (np.sort(rng.uniform(0, N, 25 * N)), "M1")]
    trials = {"start_time": start, "stop_time": stop, "target_on_time": event, "success": success,
              "target_pos": pos, "target_id": classes.astype(np.int64)}
    return trials, units, classes


def nwb(**params):
    """The nwb source through its spec text, exactly as `--source nwb:key=value,...` creates it."""
    return create("sources", format_spec("nwb", {k: str(v) for k, v in params.items()}))


def direct_counts(units, events, windows_ms):
    """Reference: count spikes s with event + a <= s < event + b by brute force."""
    out = np.zeros((len(events), len(windows_ms), len(units)), dtype=np.int64)
    for u, (st, _) in enumerate(units):
        st = np.asarray(st)
        for i, e in enumerate(events):
            for k, (a, b) in enumerate(windows_ms):
                out[i, k, u] = np.sum((st >= e + a / 1000) & (st < e + b / 1000))
    return out


def all_rows(data):
    """Train and test rows of every source, concatenated (the split shuffles trials)."""
    xs = [torch.cat([a, b]).numpy() for a, b in zip(data.train.xs, data.test.xs)]
    return xs, torch.cat([data.train.y, data.test.y]).numpy()


def sorted_rows(mat):
    return mat[np.lexsort(mat.T[::-1])]


def test_counts_match_direct_numpy_including_edges(tmp_path):
    trials, units, classes = make_session((3, 3, 3, 3), seed=1)
    path = write_nwb(tmp_path / "s.nwb", trials, units)
    feats = trial_features(read_recording(path), event="target_on_time", windows=parse_windows("0:100+100:200"),
                           target="target_pos", group_by="location")
    ref = direct_counts(units, trials["target_on_time"], WINDOWS_MS)
    np.testing.assert_array_equal(feats.counts, ref)
    # The edge unit: spikes at onset+0, +100 ms, +200 ms. Half-open windows [0,100) and [100,200)
    # each count exactly one: the one on its start edge; the spike at +200 ms is in neither.
    np.testing.assert_array_equal(feats.counts[:, :, 0], np.ones((12, 2), dtype=np.int64))
    assert feats.counts[:, :, 1:].sum() > 0  # the random units are not all empty

    data = nwb(file=str(path), window="0:100+100:200", group_by="location", bins=4,
                         test_fraction=0.25)
    assert data.names == ["PMd/0:100ms", "PMd/100:200ms", "M1/0:100ms", "M1/100:200ms"]
    assert len(data.train) == 8 and len(data.test) == 4
    xs, y = all_rows(data)
    # Every (label, PMd window 1 counts, PMd window 2 counts, M1 counts...) row appears exactly once.
    got = sorted_rows(np.column_stack([y] + xs).astype(np.float64))
    exp = sorted_rows(np.column_stack([classes, ref[:, 0, :2], ref[:, 1, :2], ref[:, 0, 2:], ref[:, 1, 2:]])
                      .astype(np.float64))
    np.testing.assert_array_equal(got, exp)


def test_normalisations(tmp_path):
    trials, units, _ = make_session((2, 2, 2, 2), seed=2)
    path = write_nwb(tmp_path / "s.nwb", trials, units)
    spec = dict(file=str(path), window="0:100+100:300", test_fraction=0.5)
    counts = nwb(normalize="counts", **spec)
    rate = nwb(normalize="rate", **spec)
    sqrt = nwb(normalize="sqrt", **spec)
    for k, width_s in enumerate([0.1, 0.2]):
        c = counts.train.xs[k]
        torch.testing.assert_close(rate.train.xs[k], c / width_s)
        torch.testing.assert_close(sqrt.train.xs[k], torch.sqrt(c))


def test_condition_and_nan_events_dropped_with_count(tmp_path):
    trials, units, classes = make_session((3, 3, 3, 3), seed=3, nan_event=(0, 5), failed=(1, 5, 7))
    path = write_nwb(tmp_path / "s.nwb", trials, units)
    with pytest.warns(UserWarning, match=r"kept 8 of 12 trials; dropped 3 for condition success, 1 for NaN target_on_time"):
        data = nwb(file=str(path), window="0:100", condition="success", bins=4,
                             test_fraction=0.3)
    # Trial 5 is both failed and NaN: counted once, under the condition that removed it first.
    assert data.attrs["dropped_condition_success"] == 3
    assert data.attrs["dropped_NaN_target_on_time"] == 1
    assert data.attrs["n_trials"] == 8
    kept = np.setdiff1d(np.arange(12), [0, 1, 5, 7])
    _, y = all_rows(data)
    np.testing.assert_array_equal(np.sort(y), np.sort(classes[kept]))


def test_categorical_target_column(tmp_path):
    trials, units, classes = make_session((1, 2, 3, 2), seed=4)
    trials["outcome"] = np.where(classes % 2 == 0, "left", "right").astype(object)
    path = write_nwb(tmp_path / "s.nwb", trials, units)
    data = nwb(file=str(path), window="0:100", target="outcome", bins=0, test_fraction=0.25)
    assert data.class_names == ["left", "right"] and data.n_classes == 2
    _, y = all_rows(data)
    assert np.bincount(y).tolist() == [int(np.sum(classes % 2 == 0)), int(np.sum(classes % 2 == 1))]
    data = nwb(file=str(path), window="0:100", target="target_id", bins=0, test_fraction=0.25)
    assert data.class_names == ["0", "1", "2", "3"]


def test_sessions_paired_by_class(tmp_path):
    t1, u1, c1 = make_session((3, 2, 4, 2), seed=5)
    t2, u2, c2 = make_session((2, 3, 2, 2), seed=6)
    p1 = write_nwb(tmp_path / "day1.nwb", t1, u1)
    p2 = write_nwb(tmp_path / "day2.nwb", t2, u2)
    spec = dict(file=f"{p1}+{p2}", window="0:100", bins=4, test_fraction=0.5)
    data = nwb(**spec)
    assert data.names == ["day1", "day2"]
    xs, y = all_rows(data)
    # Each class keeps min(count in day1, count in day2) pairs: 2 + 2 + 2 + 2.
    assert np.bincount(y, minlength=4).tolist() == [2, 2, 2, 2]
    assert data.attrs["session1_unpaired_trials"] == 3 and data.attrs["session2_unpaired_trials"] == 1
    # Every row of source k is the count vector of a trial of that class in session k.
    for X, trials, units in ((xs[0], t1, u1), (xs[1], t2, u2)):
        ref = direct_counts(units, trials["target_on_time"], [(0.0, 100.0)])[:, 0, :]
        for row, label in zip(X, y):
            matches = np.flatnonzero((ref == row).all(axis=1))
            assert np.any(trials["target_id"][matches] == label)
    # Seeded: the same seed pairs identically.
    again = nwb(**spec)
    torch.testing.assert_close(again.train.xs[1], data.train.xs[1])
    ordered = nwb(pairing="ordered", **spec)
    assert np.bincount(all_rows(ordered)[1], minlength=4).tolist() == [2, 2, 2, 2]


def test_missing_columns_name_the_existing_ones(tmp_path):
    trials, units, _ = make_session(seed=7)
    path = write_nwb(tmp_path / "s.nwb", trials, units)
    with pytest.raises(ValueError, match=r"no column 'go_cue_time'.*start_time, stop_time, target_on_time, success, target_pos, target_id"):
        nwb(file=str(path), event="go_cue_time")
    with pytest.raises(ValueError, match=r"no column 'reach_angle'.*target_pos"):
        nwb(file=str(path), target="reach_angle")
    with pytest.raises(ValueError, match=r"units table has no column 'area'; its columns are: location, spike_times"):
        nwb(file=str(path), group_by="area")
    with pytest.raises(ValueError, match=r"no units in group\(s\) V1; groups present: PMd, M1"):
        nwb(file=str(path), group_by="location", groups="PMd+V1")
    with pytest.raises(ValueError, match=r"bins=0 for a categorical column|bin it into angular sectors"):
        nwb(file=str(path), bins=0)


def test_window_outside_trial_is_a_clear_error(tmp_path):
    trials, units, _ = make_session(seed=8)  # trials cover -300 .. +500 ms around target onset
    path = write_nwb(tmp_path / "s.nwb", trials, units)
    with pytest.raises(ValueError, match=r"window 400:600ms lies outside 8 of 8 trials .*-300 to 500 ms"):
        nwb(file=str(path), window="0:100+400:600")
    with pytest.raises(ValueError, match=r"window -400:0ms lies outside"):
        nwb(file=str(path), window="-400:0")
    data = nwb(file=str(path), window="-300:0+400:500", bins=4, test_fraction=0.5)  # edges fit
    assert data.n_sources == 2
    with pytest.raises(ValueError, match=r"end \(50 ms\) must be after the start"):
        nwb(file=str(path), window="100:50")


def test_window_range_syntax():
    w = parse_windows("50:450:100")
    assert [(x.start_ms, x.stop_ms) for x in w] == [(50, 150), (150, 250), (250, 350), (350, 450)]
    assert [x.label for x in parse_windows("-200:0+0:50.5")] == ["-200:0ms", "0:50.5ms"]


def test_group_by_electrode_group_and_its_location(tmp_path):
    """Units referencing electrode groups: sources per group (by name) or per group location."""
    f = NWBFile(session_description="eg", identifier="eg", session_start_time=datetime(2021, 1, 1, tzinfo=timezone.utc))
    dev = f.create_device("utah")
    groups = [f.create_electrode_group(n, description=n, location=loc, device=dev)
              for n, loc in (("array_a", "PMd"), ("array_b", "PMd"), ("array_c", "M1"))]
    f.add_trial_column("target_on_time", "onset")
    f.add_trial_column("target_id", "target")
    for i in range(8):
        f.add_trial(start_time=float(i), stop_time=i + 0.9, target_on_time=i + 0.2, target_id=i % 2)
    spikes = [np.arange(8) + 0.25 + 0.01 * u for u in range(3)]  # one spike per trial, 50-80 ms after onset
    for st, g in zip(spikes, groups):
        f.add_unit(spike_times=st, electrode_group=g)
    with NWBHDF5IO(str(tmp_path / "eg.nwb"), "w") as io:
        io.write(f)
    spec = dict(file=tmp_path / "eg.nwb", window="0:100", target="target_id", bins=0, test_fraction=0.5)
    by_group = nwb(group_by="electrode_group", **spec)
    assert by_group.names == ["array_a", "array_b", "array_c"]
    by_area = nwb(group_by="electrode_group.location", **spec)
    assert by_area.names == ["PMd", "M1"]
    assert by_area.in_shape(0) == (2,) and by_area.in_shape(1) == (1,)
    assert bool((by_area.train.xs[0] == 1).all()) and bool((by_area.test.xs[1] == 1).all())
