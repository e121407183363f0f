"""A GRU baseline: a stack of GRU layers with a learned initial state and a linear output layer.

A plugin model: it subclasses ntm-bench's SequenceModel, takes the task's sizes first and its own
parameters as annotated keywords with defaults, and maps inputs [T, B, I] to logits [T, B, O].
"""

import torch
from torch import nn

from ntm_bench.models.base import SequenceModel, expand_initial, positive


class GRU(SequenceModel):
    """`num_layers` GRU layers of `hidden_size` units."""

    def __init__(
        self, input_size: int, output_size: int, hidden_size: int = 128, num_layers: int = 1
    ):
        super().__init__(input_size, output_size)
        self.hidden_size = positive("hidden_size", hidden_size)
        self.num_layers = positive("num_layers", num_layers)
        self.rnn = nn.GRU(input_size, self.hidden_size, self.num_layers)
        self.h0 = nn.Parameter(torch.zeros(self.num_layers, self.hidden_size))
        self.out = nn.Linear(self.hidden_size, output_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        h0 = expand_initial(self.h0, inputs.shape[1]).transpose(0, 1).contiguous()  # [layers, B, H]
        hidden, _ = self.rnn(inputs, h0)
        return self.out(hidden)
