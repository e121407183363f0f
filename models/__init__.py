"""The model registry: MODELS maps a name (also the YAML key) to its class.

Reading order. The models share one contract, base.py (SequenceModel). The memory models, the NTM
and the DNC, are each a readable reference step and a fast path tested against it:

1. The reference step, plain autograd:
   ntm.py (NTM.step) on ntm_memory.py (addressing, read, erase/add write, equations beside the
   code), and dnc.py (DNC.step) on dnc_memory.py (usage, allocation, temporal links, read modes)
   and ntm_memory.py's content lookup and write, which the DNC shares.
2. The fast path, the same math with hand-derived gradients:
   fused_engine.py runs a model's whole sequence as one autograd Function in chunks of steps
   (eager, or compiled), and fused_model.py is the SequenceModel side of it (FusedModel: the
   switch to the reference loop, compile_step, the K-seed pass). Each model gives it only its
   step pair: ntm_fused.py with ntm_memory_grad.py, dnc_fused.py with dnc_memory_grad.py (and
   ntm_memory_grad.py's content lookup and write). fused_cell.py: the linear layers per seed and
   the LSTM cell with its gradient, which both step pairs use.
3. The tests that tie them: tests/test_ntm_fused.py (ntm.py ~ ntm_fused.py, and each function of
   ntm_memory_grad.py against autograd through ntm_memory.py) and tests/test_dnc_fused.py
   (dnc.py ~ dnc_fused.py, dnc_memory_grad.py ~ dnc_memory.py): outputs and every gradient
   within 1e-10 in float64, gradcheck of the engine's Function with each step pair, chunks and
   the K-seed pass against the whole sequence and each seed alone.

lstm.py is the paper's LSTM baseline: a stack of torch.nn.LSTM layers and a linear output layer;
lstm_matched.py the same with its width chosen to match another model's parameter count, and
transformer.py a causal transformer baseline.
"""

from __future__ import annotations

from models.base import SequenceModel
from models.dnc import DNC
from models.lstm import LSTM
from models.lstm_matched import LSTMMatched
from models.ntm import NTM, NTMFeedForward
from models.transformer import Transformer

MODELS: dict[str, type[SequenceModel]] = {
    "ntm": NTM,
    "ntm_ff": NTMFeedForward,
    "lstm": LSTM,
    "dnc": DNC,
    "transformer": Transformer,
    "lstm_matched": LSTMMatched,
}

# the package's own models; plugins (benchmarks/plugins.py) add to MODELS at run time
BUILTIN = tuple(MODELS)


def build_model(name: str, input_size: int, output_size: int, **params) -> SequenceModel:
    """Instantiate the model registered as `name`; sizes come from the task, `params` from the
    profile."""
    if name not in MODELS:
        # a plugin (module:Class or an entry point), loaded on first use
        from benchmarks.plugins import (
            lookup,
        )

        try:
            return lookup("models", name)(input_size, output_size, **params)
        except KeyError:
            raise KeyError(f"unknown model {name!r} (known: {', '.join(MODELS)})") from None
    return MODELS[name](input_size, output_size, **params)


__all__ = ["MODELS", "build_model"]
