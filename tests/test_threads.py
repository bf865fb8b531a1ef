"""Threads chosen from the work: the multiply-add count against a direct count, the rule, and a
fit leaving the process's torch thread setting as it found it."""
import torch
from torch import nn

from usable import FitConfig, create, fit, make_ensemble
from usable.threads import PARALLEL_MACS, choose_threads, sample_macs, step_macs


def test_dense_layers_count_one_per_parameter_per_sample():
    ens = make_ensemble(create("decoders", "mlp:hidden=25+15"), (4,), 3, [0, 1])
    weights = 4 * 25 + 25 * 15 + 15 * 3             # the multiply-adds proper
    others = (25 + 15 + 3) + 2 * (25 + 15)           # biases, batch-norm scale and shift
    assert sample_macs(ens, torch.zeros(4), 2) == 2 * (weights + others)


def test_convolutions_count_once_per_output_position():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)   # 8×8 output positions, 8·3·3·3 weights
            self.head = nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):  # (E, B, 3, 8, 8) as ensembles take
            E, B = x.shape[:2]
            return self.head(self.conv(x.flatten(0, 1)).flatten(1)).reshape(E, B, 10)
    got = sample_macs(Net(), torch.zeros(3, 8, 8), 1)
    assert got == (8 * 3 * 3 * 3) * 64 + 8 * 8 * 8 * 10 + 10  # conv weights once per position, then the head
    assert step_macs([Net()], [torch.zeros(3, 8, 8)], 1, 32) == 3 * 32 * got


def test_rule():
    cpu = torch.device("cpu")
    assert choose_threads(PARALLEL_MACS / 10, cpu, 4) == 1
    assert choose_threads(PARALLEL_MACS * 2, cpu, 4) == 4
    assert choose_threads(PARALLEL_MACS * 2, torch.device("cuda"), 4) == 1


def test_fit_restores_the_callers_thread_setting():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        data = create("sources", "pid:task=and,n=400")
        fit(data, create("decoders", "mlp"), config=FitConfig(epochs=1, progress=False))
        assert torch.get_num_threads() == 2
        fit(data, create("decoders", "mlp"), config=FitConfig(epochs=1, progress=False, threads=1))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
