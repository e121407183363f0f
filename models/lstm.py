"""The LSTM baseline of the paper: a stack of LSTM layers and a linear output layer.

The initial hidden and cell states of every layer are learned (the paper resets state to learned
biases at each sequence). `torch.nn.LSTM` runs the whole sequence in one fused call.
"""

from __future__ import annotations

import torch
from torch import nn

from ntm_bench.models.base import SequenceModel, expand_initial, positive


class LSTM(SequenceModel):
    """`num_layers` LSTM layers of `hidden_size` units; logits from the top layer."""

    def __init__(
        self, input_size: int, output_size: int, hidden_size: int = 256, num_layers: int = 3
    ):
        super().__init__(input_size, output_size)
        self.hidden_size = positive("hidden_size", hidden_size)
        self.num_layers = positive("num_layers", num_layers)
        self.rnn = nn.LSTM(input_size, self.hidden_size, self.num_layers)
        self.h0 = nn.Parameter(torch.zeros(self.num_layers, self.hidden_size))
        self.c0 = nn.Parameter(torch.zeros(self.num_layers, self.hidden_size))
        self.out = nn.Linear(self.hidden_size, output_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch = inputs.shape[1]
        h0 = expand_initial(self.h0, batch).transpose(0, 1).contiguous()  # [layers, B, H]
        c0 = expand_initial(self.c0, batch).transpose(0, 1).contiguous()
        hidden, _ = self.rnn(inputs, (h0, c0))
        return self.out(hidden)
