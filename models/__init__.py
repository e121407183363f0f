"""The model registry: MODELS maps a name (also the YAML key) to its class.

Reading order. The models share one contract, base.py (SequenceModel). The memory models, the NTM
and the DNC, are each a readable reference step and a native kernel tested against it:

1. The reference step, plain autograd:
   ntm.py (NTM.step) on ntm_memory.py (addressing, read, erase/add write, equations beside the
   code), and dnc.py (DNC.step) on dnc_memory.py (usage, allocation, temporal links, read modes)
   and ntm_memory.py's content lookup and write, which the DNC shares. It runs on a GPU and for
   traces.
2. The native kernel, what runs on a CPU: ntm_kernel.py and dnc_kernel.py (numba) run a whole
   sequence forward and its hand-derived backward as loops over the memory, each equation beside
   its loop; fused_model.py is what both share around them (FusedModel: the switch between kernel
   and reference, the K-seed pass), and fused_cell.py the linear layers per seed on the torch side.
3. The tests that tie them: tests/test_ntm_kernel.py and tests/test_dnc_kernel.py: outputs and
   every gradient against autograd through the reference step within 1e-10 in float64, gradcheck
   of each kernel's Function, K seeds in one pass against each seed alone.

lstm.py is the paper's LSTM baseline: a stack of torch.nn.LSTM layers and a linear output layer;
lstm_matched.py the same with its width chosen to match another model's parameter count, and
transformer.py a causal transformer baseline.
"""

from __future__ import annotations

from ntm_bench.models.base import SequenceModel
from ntm_bench.models.dnc import DNC
from ntm_bench.models.lstm import LSTM
from ntm_bench.models.lstm_matched import LSTMMatched
from ntm_bench.models.ntm import NTM, NTMFeedForward
from ntm_bench.models.transformer import Transformer

MODELS: dict[str, type[SequenceModel]] = {
    "ntm": NTM,
    "ntm_ff": NTMFeedForward,
    "lstm": LSTM,
    "dnc": DNC,
    "transformer": Transformer,
    "lstm_matched": LSTMMatched,
}


def build_model(name: str, input_size: int, output_size: int, **params) -> SequenceModel:
    """Instantiate the model registered as `name`; sizes come from the task, `params` from the
    profile. A plugin is registered by the harness (benchmarks/harness/plugins.py) before it is
    built."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r} (known: {', '.join(MODELS)})")
    return MODELS[name](input_size, output_size, **params)


__all__ = ["MODELS", "build_model"]
