"""The LSTM baseline at a matched parameter count: `hidden_size` solved from a target count.

Why: the paper's LSTM baselines have 20-80x the parameters of the NTM they are compared with
(3 x 256 units against a 100-unit controller), so "the NTM beats the LSTM" could also read
"1.3M parameters beat 60k". This model is the same LSTM (models.lstm.LSTM) with the hidden size
chosen so that its trainable-parameter count is as close as possible to `params` (by default
62736, the paper's NTM count on copy), which separates the architecture from the budget.

How H is solved: an LSTM of L layers of H units on input I and output O has

    layer 1:        4H(I + H) + 8H (weights, two bias vectors) + 2H (learned h0, c0)
    layers 2..L:    4H(H + H) + 8H + 2H each
    output layer:   H*O + O

so count(H) = a H^2 + b H + c with a = 8L - 4, b = 4I + 10L + O, c = O. The positive root of
count(H) = params by the quadratic formula, then its integer neighbours: the H >= 1 whose count
is closest (the smaller on a tie). tests/test_transformer.py checks the closed form against
n_params(). A target that even H = 1 overshoots by more than 10 % is a ValueError.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ntm_bench.models.base import positive
from ntm_bench.models.lstm import LSTM


class Match(NamedTuple):
    hidden_size: int  # the solved H
    count: int  # the LSTM's trainable parameters at H


def lstm_param_count(input_size: int, output_size: int, hidden_size: int, num_layers: int) -> int:
    """Trainable parameters of models.lstm.LSTM(input_size, output_size, hidden_size,
    num_layers)."""
    H = hidden_size
    first = 4 * H * (input_size + H) + 8 * H + 2 * H
    rest = (num_layers - 1) * (4 * H * (2 * H) + 8 * H + 2 * H)
    return first + rest + H * output_size + output_size


def matched_hidden_size(
    input_size: int, output_size: int, params: int, num_layers: int = 1
) -> Match:
    """The H >= 1 whose LSTM count is closest to `params`; ValueError when H = 1 exceeds 1.1 x
    params."""
    params, num_layers = positive("params", params), positive("num_layers", num_layers)
    smallest = lstm_param_count(input_size, output_size, 1, num_layers)
    if smallest > 1.1 * params:
        raise ValueError(
            f"params={params} is too small: even hidden_size 1 has {smallest} parameters "
            f"(input {input_size}, output {output_size}, {num_layers} layers)"
        )
    a, b, c = (
        8 * num_layers - 4,
        4 * input_size + 10 * num_layers + output_size,
        output_size - params,
    )
    root = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    # the real root lies between floor and ceil; a neighbour each side guards against rounding
    candidates = range(max(1, math.floor(root) - 1), math.ceil(root) + 2)
    best = min(
        candidates,
        key=lambda H: (abs(lstm_param_count(input_size, output_size, H, num_layers) - params), H),
    )
    return Match(best, lstm_param_count(input_size, output_size, best, num_layers))


class LSTMMatched(LSTM):
    """models.lstm.LSTM with `hidden_size` solved so its parameter count is closest to `params`."""

    def __init__(self, input_size: int, output_size: int, params: int = 62736, num_layers: int = 1):
        match = matched_hidden_size(input_size, output_size, params, num_layers)
        super().__init__(
            input_size, output_size, hidden_size=match.hidden_size, num_layers=num_layers
        )
