"""`dib:checkpoint=PATH` measures the networks saved by `nc:save=PATH` instead of training one."""
import numpy as np
import pytest

from usable import RunSpec, run_metric


def _ctx(metric, source="digits", epochs=2):
    return RunSpec.create(metric, [source], decoder="mlp:hidden=32+16", divergence=None, schedule="constant",
                          epochs=epochs, optimizer="adam", lr=0.01, weight_decay=0.0, progress=False)


def test_dib_on_a_saved_network_equals_dib_on_the_network_trained_in_the_run(tmp_path):
    ck = tmp_path / "net.pt"
    run_metric(_ctx(f"nc:save={ck},splits=test", epochs=2))
    opts = "layers=0+2,dib_epochs=3,minimality=false"
    loaded = run_metric(_ctx(f"dib:checkpoint={ck},{opts}", epochs=1))  # the run's own training is skipped
    trained = run_metric(_ctx(f"dib:{opts}", epochs=2))                  # the same training, done here
    fresh = run_metric(_ctx(f"dib:{opts}", epochs=1))                    # a different network
    assert loaded.attrs["network"] == f"loaded from {ck}"
    # same seed, same batches, same batch-norm training arithmetic: the saved network is the one
    # dib would have trained itself, so every measured value agrees
    np.testing.assert_allclose(loaded["sufficiency"].values, trained["sufficiency"].values, atol=1e-9)
    # layer 0 is the raw input, independent of the network; layer 2 is not
    np.testing.assert_allclose(loaded["sufficiency"].sel(layer=0).values, fresh["sufficiency"].sel(layer=0).values,
                               atol=1e-9)
    assert np.abs(loaded["sufficiency"].sel(layer=2).values - fresh["sufficiency"].sel(layer=2).values).max() > 1e-4


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    ck = tmp_path / "net.pt"
    run_metric(_ctx(f"nc:save={ck},splits=test", epochs=1))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", x=rng.normal(size=(60, 5)).astype("float32"), y=np.arange(60) % 10)
    with pytest.raises(ValueError, match=r"has in_shape=\[1, 8, 8\], but this run needs \[5\]"):
        run_metric(_ctx(f"dib:checkpoint={ck}", source=f"arrays:file={tmp_path / 'a.npz'},sources=x,target=y"))
