"""n-source RINE: the two divergence forms against a direct formula, and the canonical 3-source
tasks (rdn3: all copy one bit, I∩ = 1 bit; xor3: Y = X1⊕X2⊕X3, I∩ = 0)."""
import itertools

import numpy as np
import pytest
import torch

from usable import FitConfig, RunSpec, SourceData, Split, combine_divergence, fit, get_entry, null_logp, run_metric
from usable_pid import exact_mutual_information

FAST = dict(epochs=10, batch_size=128, optimizer="adam", lr=0.05, lr_decay=0.9, weight_decay=0.0,
            progress=False)


def test_pairwise_and_consensus_forms_match_their_formulas():
    rng = np.random.default_rng(3)
    ps = [rng.dirichlet(np.ones(5), size=(4, 7)) for _ in range(3)]  # 3 sources, (members, batch, K)
    l1 = lambda a, b: np.abs(a - b).sum(-1)
    pair = np.mean([l1(ps[i], ps[j]) for i, j in itertools.combinations(range(3), 2)], axis=0)
    centre = np.mean(ps, axis=0)
    cons = np.mean([l1(p, centre) for p in ps], axis=0)
    div = get_entry("divergences", "l1").create({})
    t = [torch.tensor(p) for p in ps]
    np.testing.assert_allclose(combine_divergence(div, t, "pairwise").numpy(), pair, rtol=1e-12)
    np.testing.assert_allclose(combine_divergence(div, t, "consensus").numpy(), cons, rtol=1e-12)
    same = [t[0]] * 3
    assert combine_divergence(div, same, "pairwise").abs().max() == 0
    assert combine_divergence(div, same, "consensus").abs().max() < 1e-15  # the mean of equal p rounds
    with pytest.raises(ValueError, match="pairwise, consensus"):
        combine_divergence(div, t, "median")


def test_three_source_tasks_have_the_stated_information():
    for i in range(3):
        assert exact_mutual_information("rdn3", (i,)) == pytest.approx(1.0)
        assert exact_mutual_information("xor3", (i,)) == pytest.approx(0.0, abs=1e-12)
    assert exact_mutual_information("xor3", (0, 1)) == pytest.approx(0.0, abs=1e-12)
    assert exact_mutual_information("xor3", (0, 1, 2)) == pytest.approx(1.0)


def rine(sources, form, betas=(15.0,)):
    return run_metric(RunSpec.create("rine", sources, "linear", "l1", "exp:gamma=0.7", betas, [0, 1],
                                     FitConfig(**FAST, divergence_form=form)))


@pytest.mark.parametrize("form", ["pairwise", "consensus"])
def test_rdn3_and_xor3(form):
    rdn = rine(["pid:task=rdn3,n=4000"], form)
    assert rdn.sizes["source"] == 3 and rdn.attrs["divergence_form"] == form
    assert float(rdn.redundant_information.min()) >= 0.9, rdn.redundant_information.values
    xor = rine(["pid:task=xor3,n=4000"], form)
    assert float(xor.redundant_information.max()) <= 0.05, xor.redundant_information.values


def _pair_plus_outsider(n=4000, seed=0):
    """Y = (A, B) two fair bits; X1 = X2 = A, X3 = B. Each source alone carries 1 bit, X1 and X2
    share 1 bit, but no function of X3 is also a function of X1: the 3-way redundancy is 0."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, 2, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)
    y = 2 * a + b
    oh = lambda v: torch.nn.functional.one_hot(v, 2).float()
    xs = [oh(a), oh(a), oh(b)]
    cut = int(0.8 * n)
    return SourceData(Split([x[:cut] for x in xs], y[:cut]), Split([x[cut:] for x in xs], y[cut:]),
                      ["a1", "a2", "b"], "classes", 4)


@pytest.mark.parametrize("form", ["pairwise", "consensus"])
def test_the_divergence_couples_all_n_sources(form):
    """A pair that is redundant must not make three sources look redundant: with the outsider X3
    the n-source divergence drives I∩ to 0, while X1, X2 alone keep their shared bit."""
    data = _pair_plus_outsider()
    lin, div = get_entry("decoders", "linear").create({}), get_entry("divergences", "l1").create({})
    sched = get_entry("schedules", "exp").create({"gamma": "0.7"})
    h_null = float(-null_logp(data, "test")[0].double().mean())
    assert h_null == pytest.approx(2.0, abs=0.01)
    for sub, lo, hi in (([0, 1, 2], -0.05, 0.05), ([0, 1], 0.9, 1.02)):
        d = data.select(sub)
        res = fit(d, lin, divergence=div, schedule=sched, betas=[0.0, 15.0], seeds=[0],
                  config=FitConfig(**FAST, divergence_form=form))
        i_cap = h_null - res.to_dataset().cross_entropy.isel(dataset=0, seed=0).mean("source").values  # (beta,)
        np.testing.assert_allclose(i_cap[0], 1.0, atol=0.05)  # β = 0: each source's own bit
        assert lo <= i_cap[1] <= hi, (sub, form, i_cap)
