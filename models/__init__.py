"""The model registry: MODELS maps a name (also the YAML key) to its class."""

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

BUILTIN = tuple(MODELS)  # the package's own models; plugins (benchmarks/plugins.py) add to MODELS at run time


def build_model(name: str, input_size: int, output_size: int, **params) -> SequenceModel:
    """Instantiate the model registered as `name`; sizes come from the task, `params` from the profile."""
    if name not in MODELS:
        from benchmarks.plugins import lookup   # a plugin (module:Class or an entry point), loaded on first use

        try:
            return lookup("models", name)(input_size, output_size, **params)
        except KeyError:
            raise KeyError(f"unknown model {name!r} (known: {', '.join(MODELS)})") from None
    return MODELS[name](input_size, output_size, **params)


__all__ = ["MODELS", "SequenceModel", "build_model"]
