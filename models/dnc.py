"""The Differentiable Neural Computer (Graves et al., Nature 2016) with one write head.

One time step (shapes: R read heads, N x M memory):

    controller input   [x_t, r_{t-1} (R*M)]
    controller         LSTM cell, one matmul (as in models.ntm) -> h_t
    interface          one linear map of h_t, clipped to +-clip, split and activated into
                       read keys k^r (R*M), read strengths beta^r (R), write key k^w (M),
                       write strength beta^w (1), erase e (M), write vector v (M),
                       free gates f (R), allocation gate g^a (1), write gate g^w (1),
                       read modes pi (3R)
    usage              u_t from u_{t-1}, w^w_{t-1} and the retention of f against w^r_{t-1}
    write              w^w_t = g^w [g^a alloc(u_t) + (1 - g^a) content(M_{t-1}, k^w)];
                       M_t = M_{t-1} o (1 - w^w e^T) + w^w v^T
    links              L_t from L_{t-1}, p_{t-1}, w^w_t (models.dnc_memory.link), the forward
                       and backward weightings from L_t (directional_weights); p_t from w^w_t
    read               w^r_t = pi_b L_t^T w^r_{t-1} + pi_c content(M_t, k^r) + pi_f L_t w^r_{t-1};
                       r_t = M_t^T w^r_t
    output             y_t = linear([h_t, r_t])

Activations (the paper's): strengths 1 + softplus, erase and the gates sigmoid, read modes
softmax over (backward, content, forward); keys and the write vector have none. The clip acts on
the interface vector (as the NTM clips its head outputs): an LSTM's h_t is already in (-1, 1).

Initial state: all zeros and not learned, as in the reference code: controller state, read
vectors, memory, usage, link matrix, precedence and weightings. So every parameter is a weight
of the controller, interface or output layer. A zero memory gives uniform content weightings, and
the first allocation goes to location 0 (ties in usage break by index: dnc_memory.allocation).

Initialization choices that differ from Collier & Beel 2018 (whose NTM code models.ntm follows):
- no forget-gate bias: the LSTM controller's biases start as torch's nn.Linear default,
  U(+-1/sqrt(fan_in));
- no clip on the output logits: only the interface vector is clipped (to +-`clip`, default 20);
- there is no constant 1e-6 memory: the memory starts at zero (above), made afresh in
  `initial_state` for every batch, neither a buffer nor a parameter.

On a CPU, training and evaluation run the same math as one native kernel with a hand-derived
backward (models.dnc_kernel); `step` is the readable reference it is tested against
(tests/test_dnc_kernel.py), and what runs on a GPU and for traces (models.fused_model).

Defaults follow the NTM paper's copy setup (controller 100, memory 128 x 20, one read head) so the
two models are compared at equal size; the DNC reference code used 4 read heads on 16 x 16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ntm_bench.models import dnc_memory as dm
from ntm_bench.models import ntm_memory as mem
from ntm_bench.models.base import positive
from ntm_bench.models.dnc_memory import DNCState
from ntm_bench.models.dnc_kernel import Layout, dnc_sequence, interface_order
from ntm_bench.models.fused_model import FusedModel, Operands, Weights


class DNC(FusedModel):
    """DNC with an LSTM controller, `read_heads` read heads and one write head."""

    has_memory = True
    supports_vmap = True  # the time loop is vmap-safe: seeds can train as one batched model
    write_heads = 1
    native = staticmethod(dnc_sequence)

    def __init__(
        self,
        input_size: int,
        output_size: int,
        controller_size: int = 100,
        memory_size: int = 128,
        memory_width: int = 20,
        read_heads: int = 1,
        clip: float = 20.0,
    ):
        super().__init__(input_size, output_size)
        C = self.controller_size = positive("controller_size", controller_size)
        self.memory_size = positive("memory_size", memory_size)
        M = self.memory_width = positive("memory_width", memory_width)
        R = self.read_heads = positive("read_heads", read_heads)
        if not clip > 0:
            raise ValueError(f"clip must be positive, got {clip!r}")
        self.clip = float(clip)
        # interface layout, in order: read keys, read strengths, write key, write strength, erase,
        # write vector, free gates, allocation gate, write gate, read modes
        self.interface_split = [R * M, R, M, 1, M, M, R, 1, 1, 3 * R]
        self.controller_layer = nn.Linear(input_size + R * M + C, 4 * C)
        self.interface = nn.Linear(C, sum(self.interface_split))
        self.out = nn.Linear(C + R * M, output_size)
        # for the kernel only: derived from the sizes, so not saved in checkpoints
        self.register_buffer(
            "interface_order", interface_order(self.interface_split), persistent=False
        )
        self.layout = Layout(input_size, C, R, self.memory_size, M, self.clip)

    def initial_state(self, batch: int, like: torch.Tensor) -> DNCState:
        """The all-zero state every sequence starts from, with `like`'s dtype and device."""
        C, N, M, R = self.controller_size, self.memory_size, self.memory_width, self.read_heads

        def zeros(*shape):
            return torch.zeros(batch, *shape, dtype=like.dtype, device=like.device)

        return DNCState(
            h=zeros(C),
            c=zeros(C),
            memory=zeros(N, M),
            usage=zeros(N),
            link=zeros(N, N),
            precedence=zeros(N),
            read_weights=zeros(R, N),
            write_weights=zeros(N),
            reads=zeros(R, M),
        )

    def control(self, x: torch.Tensor, state: DNCState) -> tuple[torch.Tensor, torch.Tensor]:
        """LSTM controller step on [x_t, r_{t-1}, h_{t-1}]: returns (h_t, c_t)."""
        gates = self.controller_layer(torch.cat([x, state.reads.flatten(1), state.h], dim=-1))
        C = self.controller_size
        i, f, o = torch.sigmoid(gates[:, : 3 * C]).chunk(3, dim=-1)
        c = f * state.c + i * torch.tanh(gates[:, 3 * C :])
        return o * torch.tanh(c), c

    def interface_parameters(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split and activate the interface vector of h [B, C] (see the module docstring)."""
        B, R, M = h.shape[0], self.read_heads, self.memory_width
        raw = self.interface(h).clamp(-self.clip, self.clip)
        rk, rs, wk, ws, erase, add, free, alloc, write, modes = raw.split(
            self.interface_split, dim=-1
        )
        return {
            "read_keys": rk.reshape(B, R, M),
            "read_strengths": 1 + F.softplus(rs),
            "write_key": wk.unsqueeze(1),  # [B, 1, M]: one head for content_weights
            "write_strength": 1 + F.softplus(ws),  # [B, 1]
            "erase": torch.sigmoid(erase).unsqueeze(1),  # [B, 1, M]: one head for mem.write
            "add": add.unsqueeze(1),
            "free_gates": torch.sigmoid(free),  # [B, R]
            "allocation_gate": torch.sigmoid(alloc[:, 0]),  # [B]
            "write_gate": torch.sigmoid(write[:, 0]),
            "read_modes": torch.softmax(modes.reshape(B, R, 3), dim=-1),
        }

    def step(self, x: torch.Tensor, state: DNCState) -> tuple[torch.Tensor, DNCState]:
        """One time step: x [B, I] -> (logits [B, O], next state)."""
        h, c = self.control(x, state)
        p = self.interface_parameters(h)
        usage = dm.usage(
            state.usage, state.write_weights, dm.retention(p["free_gates"], state.read_weights)
        )
        write_content = mem.content_weights(state.memory, p["write_key"], p["write_strength"])[:, 0]
        write_weights = dm.write_weighting(
            write_content, dm.allocation(usage), p["write_gate"], p["allocation_gate"]
        )
        memory = mem.write(state.memory, write_weights.unsqueeze(1), p["erase"], p["add"])
        link = dm.link(state.link, state.precedence, write_weights)
        forward, backward = dm.directional_weights(link, state.read_weights)
        read_content = mem.content_weights(memory, p["read_keys"], p["read_strengths"])
        read_weights = dm.read_weighting(backward, read_content, forward, p["read_modes"])
        reads = mem.read(memory, read_weights)
        logits = self.out(torch.cat([h, reads.flatten(1)], dim=-1))
        precedence = dm.precedence(state.precedence, write_weights)
        return logits, DNCState(
            h, c, memory, usage, link, precedence, read_weights, write_weights, reads
        )

    def forward(self, inputs: torch.Tensor, trace: bool = False):
        """inputs [T, B, I] -> logits [T, B, O] (and the weightings if `trace`). Runs the kernel
        on a CPU unless `fused` is off or a trace is asked for; else the reference step."""
        if self.runs_native(inputs) and not trace:
            return self.fused_forward(inputs)
        traced = (
            (lambda state: (state.read_weights, state.write_weights.unsqueeze(1)))
            if trace
            else None
        )
        logits, weights = self.unroll(inputs, self.initial_state(inputs.shape[1], inputs), traced)
        if not trace:
            return logits
        return logits, {
            "read_weights": torch.stack([r for r, _ in weights]),
            "write_weights": torch.stack([w for _, w in weights]),
        }

    def fused_operands(self, batch: int, tensors: dict | None = None, seeds: int = 1) -> Operands:
        """The all-zero initial state and the weights (the interface layer's rows in
        interface_order) the kernel starts from (FusedModel.fused_operands)."""
        if tensors is None:  # attributes, not get_parameter: functional_call swaps in plain tensors
            tensors = {
                "controller_layer.weight": self.controller_layer.weight,
                "controller_layer.bias": self.controller_layer.bias,
                "interface.weight": self.interface.weight,
                "interface.bias": self.interface.bias,
            }
        order = self.interface_order
        weights = Weights(
            tensors["controller_layer.weight"],
            tensors["controller_layer.bias"],
            tensors["interface.weight"][..., order, :],
            tensors["interface.bias"][..., order],
        )
        return Operands(self.initial_state(seeds * batch, weights.controller), weights)
