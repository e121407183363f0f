"""The Neural Turing Machine (Graves et al. 2014) with any number of read and write heads.

One time step, all heads at once (shapes: R read heads, W write heads, N x M memory):

    controller input   [x_t, r_{t-1} (R*M)]
    controller         LSTM cell (`ntm`) or one tanh layer (`ntm_ff`) -> h_t; with
                       controller_layers L > 1 (LSTM only), L stacked cells, each above the
                       first reading [h below_t, its own h_{t-1}], and h_t the top one's
    head parameters    one linear map of h_t, clipped to +-20 (Collier & Beel 2018):
                       per head key k (M), strength beta (1), gate g (1), shift s (S), gamma (1);
                       per write head also erase e (M) and add a (M)
    addressing         all R + W heads against M_{t-1} (models.ntm_memory.address)
    read               r_t = w^r_t M_{t-1}
    write              M_t = M_{t-1} prod(1 - w^w e) + sum w^w a
    output             y_t = linear([h_t, r_t])

Activations: beta = softplus, g = sigmoid, s = softmax, gamma = 1 + softplus, e = sigmoid,
a = tanh; keys have none (Collier & Beel 2018 found that this trains best).

On a CPU, training and evaluation run the whole sequence as one native kernel with a
hand-derived backward (models.ntm_kernel: the same math as `step`, as loops beside the paper's
equations); `step` is the readable reference it is tested against (tests/test_ntm_kernel.py),
and what runs on a GPU and for traces (models.fused_model).

Initial state: learned controller state, learned read vectors, learned weightings (softmax of
learned logits). The memory starts as `memory_init`:
- "constant": every cell 1e-6, not learned (Collier & Beel: converges ~2x faster);
- "learned": a parameter, initialized uniform in +-1/sqrt(N + M);
- "random": a fixed random matrix drawn at construction, not learned.
With a constant memory every location looks alike to content addressing, so the learned initial
weightings must break the symmetry: `weighting_init` "first" starts every head peaked on location
0 (the start of a tape), "random" starts them at softmax of N(0, 1) logits.

Initialization choices that differ from Collier & Beel 2018 (the implementation published with
their paper):
- no forget-gate bias: the LSTM controller's biases start as torch's nn.Linear default,
  U(+-1/sqrt(fan_in)), where their BasicLSTMCell adds forget_bias=1.0;
- no clip on the output logits: only the head parameters are clipped (to +-`clip`, default 20),
  where they also clip the output to +-20;
- the constant memory (memory_init "constant", every cell 1e-6) is a fixed buffer, not trained,
  where theirs is a variable initialized to 1e-6 (tf.get_variable: trainable).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ntm_bench.models import ntm_memory as mem
from ntm_bench.models.base import expand_initial, positive
from ntm_bench.models.fused_model import FusedModel, Operands
from ntm_bench.models.ntm_kernel import Layout, NTMWeights, head_order, ntm_sequence
from ntm_bench.models.ntm_memory import NTMState

MEMORY_INITS = ("constant", "learned", "random")
WEIGHTING_INITS = ("first", "random")
CONTROLLERS = ("lstm", "feedforward")


class HeadParameters(NamedTuple):
    """The activated head outputs of one step; R read heads first, then W write heads."""

    key: torch.Tensor  # [B, R + W, M]
    strength: torch.Tensor  # [B, R + W], beta
    gate: torch.Tensor  # [B, R + W], g
    shift: torch.Tensor  # [B, R + W, S]
    gamma: torch.Tensor  # [B, R + W]
    erase: torch.Tensor  # [B, W, M]
    add: torch.Tensor  # [B, W, M]


def check_choices(**chosen: str) -> None:
    """ValueError naming the keyword whose value is not one of its known choices."""
    known = {
        "controller": CONTROLLERS,
        "memory_init": MEMORY_INITS,
        "weighting_init": WEIGHTING_INITS,
    }
    for name, value in chosen.items():
        if value not in known[name]:
            raise ValueError(f"{name} must be one of {', '.join(known[name])}, got {value!r}")


class NTM(FusedModel):
    """NTM with an LSTM (default) or feed-forward controller."""

    has_memory = True
    supports_vmap = True  # the time loop is vmap-safe: seeds can train as one batched model
    native = staticmethod(ntm_sequence)
    later_params = ("controller_layers",)  # after the replicate grid was published

    def __init__(
        self,
        input_size: int,
        output_size: int,
        controller: str = "lstm",
        controller_size: int = 100,
        controller_layers: int = 1,
        memory_size: int = 128,
        memory_width: int = 20,
        read_heads: int = 1,
        write_heads: int = 1,
        shift_range: int = 1,
        memory_init: str = "constant",
        weighting_init: str = "first",
        clip: float = 20.0,
    ):
        super().__init__(input_size, output_size)
        check_choices(controller=controller, memory_init=memory_init, weighting_init=weighting_init)
        self.controller = controller
        C = self.controller_size = positive("controller_size", controller_size)
        L = self.controller_layers = positive("controller_layers", controller_layers)
        if L > 1 and controller != "lstm":
            raise ValueError(
                f"controller_layers {controller_layers} needs the LSTM controller (a feed-forward "
                "controller has one layer)"
            )
        N = self.memory_size = positive("memory_size", memory_size)
        M = self.memory_width = positive("memory_width", memory_width)
        R = self.read_heads = positive("read_heads", read_heads)
        W = self.write_heads = positive("write_heads", write_heads)
        self.shift_range = positive("shift_range", shift_range, minimum=0)
        if 2 * self.shift_range + 1 > N:
            raise ValueError(
                f"shift_range {shift_range} needs at least {2 * shift_range + 1} memory locations, "
                f"got {N}"
            )
        if not clip > 0:
            raise ValueError(f"clip must be positive, got {clip!r}")
        self.clip = clip
        S = 2 * self.shift_range + 1
        self.address_size = M + S + 3  # key, beta, g, shift, gamma
        offsets = torch.arange(-self.shift_range, self.shift_range + 1)
        self.register_buffer("shift_index", mem.shift_index(N, offsets))
        # for the kernel only: derived from the sizes, so not saved in checkpoints
        self.register_buffer("head_order", head_order(R, W, M, S), persistent=False)
        self.layout = Layout(input_size, C, R, W, M, S, controller == "lstm", clip, L)

        gates = 4 * C if controller == "lstm" else C
        self.controller_layer = nn.Linear(
            input_size + R * M + (C if controller == "lstm" else 0), gates
        )
        self.heads = nn.Linear(C, R * self.address_size + W * (self.address_size + 2 * M))
        self.out = nn.Linear(C + R * M, output_size)
        # the layers above the first ([h below, own h], 4C gates each), nn.Linear's init; with
        # one layer, none: an empty weight the kernel takes, not a parameter
        bound = 1 / math.sqrt(2 * C)
        upper = torch.empty(L - 1, gates, 2 * C).uniform_(-bound, bound)
        upper_bias = torch.empty(L - 1, gates).uniform_(-bound, bound)
        if L > 1:
            self.upper, self.upper_bias = nn.Parameter(upper), nn.Parameter(upper_bias)
        else:
            self.register_buffer("upper", upper, persistent=False)
            self.register_buffer("upper_bias", upper_bias, persistent=False)

        self.initial_parameters(weighting_init, memory_init)

    def initial_parameters(self, weighting_init: str, memory_init: str) -> None:
        """What every sequence starts from: the controller state, the first reads, the heads'
        first weightings and the memory (learned, random or the constant 1e-6: see the module
        docstring). Drawn after the layers, in this order, from the run's init seed."""
        C, N, M = self.controller_size, self.memory_size, self.memory_width
        R, W, L = self.read_heads, self.write_heads, self.controller_layers
        if self.controller == "lstm":  # the layers side by side: [h_1 .. h_L]
            self.h0 = nn.Parameter(torch.zeros(L * C))
            self.c0 = nn.Parameter(torch.zeros(L * C))
        else:  # a feed-forward controller has no recurrent state: nothing to learn there
            self.register_buffer("h0", torch.zeros(C))
            self.register_buffer("c0", torch.zeros(C))
        self.read0 = nn.Parameter(torch.randn(R, M) * 0.01)
        logits = torch.zeros(R + W, N) if weighting_init == "first" else torch.randn(R + W, N)
        if weighting_init == "first":
            logits[:, 0] = 10.0  # softmax puts ~0.99 on location 0
        self.weight_logits0 = nn.Parameter(logits)
        if memory_init == "learned":
            bound = 1 / math.sqrt(N + M)
            self.memory0 = nn.Parameter(torch.empty(N, M).uniform_(-bound, bound))
        elif memory_init == "random":
            bound = 1 / math.sqrt(N + M)
            self.register_buffer("memory0", torch.empty(N, M).uniform_(-bound, bound))
        else:
            self.register_buffer("memory0", torch.full((N, M), 1e-6))

    def initial_state(self, batch: int) -> NTMState:
        """The learned state every sequence starts from."""
        return NTMState(
            h=expand_initial(self.h0, batch),
            c=expand_initial(self.c0, batch),
            memory=expand_initial(self.memory0, batch),
            weights=expand_initial(torch.softmax(self.weight_logits0, dim=-1), batch),
            reads=expand_initial(self.read0, batch),
        )

    def control(self, x: torch.Tensor, state: NTMState) -> tuple[torch.Tensor, torch.Tensor]:
        """Controller step: returns (h_t, c_t), every layer's side by side [B, L*C]."""
        reads = state.reads.flatten(1)
        if self.controller == "feedforward":
            return torch.tanh(self.controller_layer(torch.cat([x, reads], dim=-1))), state.c
        C = self.controller_size
        hs, cs = [], []
        for layer, (h, c) in enumerate(zip(state.h.split(C, -1), state.c.split(C, -1))):
            if layer == 0:
                gates = self.controller_layer(torch.cat([x, reads, h], dim=-1))
            else:
                inputs = torch.cat([hs[-1], h], dim=-1)
                gates = F.linear(inputs, self.upper[layer - 1], self.upper_bias[layer - 1])
            i, f, o = torch.sigmoid(gates[:, : 3 * C]).chunk(3, dim=-1)
            cs.append(f * c + i * torch.tanh(gates[:, 3 * C :]))
            hs.append(o * torch.tanh(cs[-1]))
        return torch.cat(hs, -1), torch.cat(cs, -1)

    def head_parameters(self, h: torch.Tensor) -> HeadParameters:
        """Split and activate the head outputs of h [B, C] (see the module docstring)."""
        B, R, W, M = h.shape[0], self.read_heads, self.write_heads, self.memory_width
        raw = self.heads(h).clamp(-self.clip, self.clip)
        read_raw = raw[:, : R * self.address_size].reshape(B, R, self.address_size)
        write_raw = raw[:, R * self.address_size :].reshape(B, W, self.address_size + 2 * M)
        addr = torch.cat([read_raw, write_raw[..., : self.address_size]], dim=1)  # [B, R + W, A]
        key = addr[..., :M]
        strength = F.softplus(addr[..., M])
        gate = torch.sigmoid(addr[..., M + 1])
        shift = torch.softmax(addr[..., M + 2 : -1], dim=-1)
        gamma = 1 + F.softplus(addr[..., -1])
        erase = torch.sigmoid(write_raw[..., self.address_size : self.address_size + M])
        add = torch.tanh(write_raw[..., self.address_size + M :])
        return HeadParameters(key, strength, gate, shift, gamma, erase, add)

    def step(self, x: torch.Tensor, state: NTMState) -> tuple[torch.Tensor, NTMState]:
        """One time step: x [B, I] -> (logits [B, O], next state)."""
        h, c = self.control(x, state)
        top = h[:, -self.controller_size :]  # the controller's output
        key, strength, gate, shift, gamma, erase, add = self.head_parameters(top)
        weights = mem.address(
            state.memory, state.weights, key, strength, gate, shift, gamma, self.shift_index
        )
        R = self.read_heads
        reads = mem.read(state.memory, weights[:, :R])
        memory = mem.write(state.memory, weights[:, R:], erase, add)
        logits = self.out(torch.cat([top, reads.flatten(1)], dim=-1))
        return logits, NTMState(h, c, memory, weights, reads)

    def forward(self, inputs: torch.Tensor, trace: bool = False):
        """inputs [T, B, I] -> logits [T, B, O] (and the weightings if `trace`). Runs the kernel
        on a CPU unless `fused` is off or a trace is asked for; else the reference step."""
        if self.runs_native(inputs) and not trace:
            return self.fused_forward(inputs)
        logits, weights = self.unroll(
            inputs,
            self.initial_state(inputs.shape[1]),
            (lambda state: state.weights) if trace else None,
        )
        if not trace:
            return logits
        weights, R = torch.stack(weights), self.read_heads  # [T, B, R + W, N]
        return logits, {"read_weights": weights[:, :, :R], "write_weights": weights[:, :, R:]}

    def fused_operands(self, batch: int, tensors: dict | None = None, seeds: int = 1) -> Operands:
        """The initial state and the weights (the heads layer's rows in head_order) the kernel
        starts from (FusedModel.fused_operands)."""
        order = self.head_order
        if tensors is None:
            weights = NTMWeights(
                self.controller_layer.weight,
                self.controller_layer.bias,
                self.heads.weight[order],
                self.heads.bias[order],
                self.upper,
                self.upper_bias,
            )
            return Operands(self.initial_state(batch), weights)

        def rows(value, dims):  # [K, ...] per seed (or shared [...]) -> [K*B, ...]
            value = value if value.dim() > dims else value.expand(seeds, *value.shape)
            return value.unsqueeze(1).expand(seeds, batch, *value.shape[1:]).flatten(0, 1)

        state = NTMState(
            h=rows(tensors["h0"], 1),
            c=rows(tensors["c0"], 1),
            memory=rows(tensors["memory0"], 2),
            weights=rows(torch.softmax(tensors["weight_logits0"], dim=-1), 2),
            reads=rows(tensors["read0"], 2),
        )
        weights = NTMWeights(
            tensors["controller_layer.weight"],
            tensors["controller_layer.bias"],
            tensors["heads.weight"][:, order],
            tensors["heads.bias"][:, order],
            rows_of(tensors, "upper", self.upper, seeds),
            rows_of(tensors, "upper_bias", self.upper_bias, seeds),
        )
        return Operands(state, weights)


def rows_of(tensors: dict, name: str, own: torch.Tensor, seeds: int) -> torch.Tensor:
    """K seeds' `name` [K, ...] from `tensors`, where it may be stacked per seed, shared by all
    (unstacked) or absent (a buffer that is no state: this model's own, shared)."""
    value = tensors.get(name, own)
    return value if value.dim() > own.dim() else value.expand(seeds, *value.shape)


class NTMFeedForward(NTM):
    """The NTM with a feed-forward controller (the paper's first column): `ntm_ff`."""

    def __init__(
        self, input_size: int, output_size: int, controller: str = "feedforward", **params
    ):
        super().__init__(input_size, output_size, controller=controller, **params)
