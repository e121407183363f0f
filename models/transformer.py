"""A causal Transformer decoder baseline: the model the length-generalization literature sets beside
the LSTM (Delétang et al. 2023, "Neural Networks and the Chomsky Hierarchy").

    inputs [T, B, I] -> Linear(I, d_model) (+ sinusoidal encoding) -> num_layers pre-LN layers
                     -> LayerNorm -> Linear(d_model, O) -> logits [T, B, O]

Why causal: the tasks are sequence-to-sequence streams scored step by step, and the recurrent
models emit the output at step t having read only steps <= t. A causal mask (step t attends to
steps s <= t) gives the Transformer the same information, so the comparison is fair and the
output at t is the logit of the target at t. It also keeps the harness's padding argument
(zero steps appended at the end change no earlier output) true for this model.

Positional encodings (`positional`):

- "sinusoidal" (default; Vaswani et al. 2017): added to the input projection,
      PE[p, 2i] = sin(p / 10000^(2i/d_model)),   PE[p, 2i+1] = cos(p / 10000^(2i/d_model)),
  computed on the fly for any length: there is no maximum length and no table to outgrow.
- "rotary" (RoPE, Su et al. 2021): nothing is added to the input; inside every attention layer
  the queries and keys of each head are rotated by their position. For position p and pair
  i < d_head/2 the angle is theta(p, i) = p * 10000^(-2i/d_head), and
      (q'_{2i}, q'_{2i+1}) = (q_{2i} cos theta - q_{2i+1} sin theta,
                              q_{2i} sin theta + q_{2i+1} cos theta),
  the same for k. Rotations preserve norms and R(m)^T R(n) = R(n - m), so q'_m . k'_n depends on
  the positions only through m - n: attention sees relative position. This needs the small
  attention layer below (`RotaryLayer`) in place of torch.nn.TransformerEncoderLayer.
- "none": no position information beyond what the causal mask itself implies.

The model has no external memory (`has_memory` False) and no step loop: every call attends over
the whole input, so state is fresh on every call. `supports_vmap` stays False: seed batching
is not claimed for it. Construction draws only from torch's global RNG (the harness seeds it) and
dropout defaults to 0, so runs are deterministic.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ntm_bench.models.base import SequenceModel, positive

POSITIONAL = ("sinusoidal", "rotary", "none")
BASE = 10000.0  # the wavelength base of both encodings (Vaswani et al.; Su et al.)


def sinusoidal_table(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """PE [length, dim]: PE[p, 2i] = sin(p / BASE^(2i/dim)), PE[p, 2i+1] = cos(p / BASE^(2i/dim)).
    An odd `dim` drops the last cosine column."""
    positions = torch.arange(length, device=device, dtype=dtype)[:, None]
    freqs = BASE ** (-torch.arange(0, dim, 2, device=device, dtype=dtype) / dim)  # [ceil(dim/2)]
    angles = positions * freqs
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)[:, :dim]


def rotate(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """RoPE: x [..., T, d] (d even) with pair i of step t rotated by positions[t] * BASE^(-2i/d)."""
    d = x.shape[-1]
    freqs = BASE ** (-torch.arange(0, d, 2, device=x.device, dtype=x.dtype) / d)  # [d/2]
    angles = positions.to(x.dtype)[:, None] * freqs  # [T, d/2]
    cos, sin = angles.cos(), angles.sin()
    even, odd = x.unflatten(-1, (d // 2, 2)).unbind(-1)
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


class RotaryLayer(nn.Module):
    """A pre-LN Transformer layer with RoPE on queries and keys, causal. The same parameters and
    arithmetic as torch.nn.TransformerEncoderLayer(norm_first=True, activation=relu) apart from
    the rotation (tests/test_transformer.py checks the two agree with the rotation removed), so
    the encodings are compared at equal parameter counts."""

    def __init__(self, d_model: int, num_heads: int, feedforward: int, dropout: float):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        # nn.MultiheadAttention's initialization: Xavier on the packed projection, zero biases
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.proj.bias)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.linear1, self.linear2 = (
            nn.Linear(d_model, feedforward),
            nn.Linear(feedforward, d_model),
        )
        self.drop1, self.drop2, self.drop_ff = (
            nn.Dropout(dropout),
            nn.Dropout(dropout),
            nn.Dropout(dropout),
        )

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """Causal multi-head self-attention of x [T, B, d] with rotated queries and keys."""
        T, B, d = x.shape
        heads = (
            self.qkv(x).view(T, B, 3, self.num_heads, d // self.num_heads).permute(2, 1, 3, 0, 4)
        )
        q, k, v = heads.unbind(0)  # each [B, H, T, d_head]
        positions = torch.arange(T, device=x.device)
        q, k = rotate(q, positions), rotate(k, positions)
        mixed = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        return self.proj(mixed.permute(2, 0, 1, 3).reshape(T, B, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop1(self.attend(self.norm1(x)))
        return x + self.drop2(self.linear2(self.drop_ff(F.relu(self.linear1(self.norm2(x))))))


class Transformer(SequenceModel):
    """`num_layers` causal pre-LN layers of width `d_model`, `num_heads` heads and a ReLU
    feed-forward of `feedforward` units; `positional` is "sinusoidal", "rotary" or "none"."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        d_model: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        feedforward: int = 256,
        dropout: float = 0.0,
        positional: str = "sinusoidal",
    ):
        super().__init__(input_size, output_size)
        self.d_model = positive("d_model", d_model)
        self.num_layers = positive("num_layers", num_layers)
        self.num_heads = positive("num_heads", num_heads)
        self.feedforward = positive("feedforward", feedforward)
        self.dropout, self.positional = check_choices(d_model, num_heads, dropout, positional)
        self.embed = nn.Linear(input_size, self.d_model)
        if positional == "rotary":
            self.layers = nn.ModuleList(
                RotaryLayer(self.d_model, self.num_heads, self.feedforward, self.dropout)
                for _ in range(self.num_layers)
            )
        else:
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(
                    self.d_model,
                    self.num_heads,
                    self.feedforward,
                    self.dropout,
                    norm_first=True,
                    batch_first=False,
                )
                for _ in range(self.num_layers)
            )
        # pre-LN layers leave the residual stream unnormalized
        self.norm = nn.LayerNorm(self.d_model)
        self.out = nn.Linear(self.d_model, output_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        T = inputs.shape[0]
        x = self.embed(inputs)  # [T, B, d_model]
        if self.positional == "sinusoidal":
            x = x + sinusoidal_table(T, self.d_model, inputs.device, x.dtype)[:, None]
        if self.positional == "rotary":
            for layer in self.layers:
                x = layer(x)
        else:
            mask = nn.Transformer.generate_square_subsequent_mask(
                T, device=inputs.device, dtype=x.dtype
            )
            for layer in self.layers:
                x = layer(x, src_mask=mask, is_causal=True)
        return self.out(self.norm(x))


def check_choices(
    d_model: int, num_heads: int, dropout: float, positional: str
) -> tuple[float, str]:
    """(dropout, positional) once checked against each other and the sizes; ValueError otherwise."""
    if positional not in POSITIONAL:
        raise ValueError(f"positional must be one of {', '.join(POSITIONAL)}, got {positional!r}")
    if d_model % num_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
    if positional == "rotary" and (d_model // num_heads) % 2:
        raise ValueError(
            f"rotary needs an even head dimension, got d_model / num_heads = {d_model // num_heads}"
        )
    if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):  # NaN fails the range too
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    return float(dropout), positional
