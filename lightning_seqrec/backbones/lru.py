"""The Linear Recurrent Unit for sequential recommendation (LRURec, Yue et al., WSDM 2024), with several heads.

One LRU layer keeps a complex diagonal state per position,

    h_k = λ ⊙ h_{k-1} + γ ⊙ (B x_k),     y_k = Re(C h_k),     out_k = LayerNorm(Dropout(y_k) + x_k),

with λ = exp(-exp(ν) + i·exp(θ)) (|λ| < 1 by construction), ν and θ initialised on a ring of radius [r_min, r_max]
and phase [0, 2π), and γ initialised to sqrt(1 - |λ|²) and learned afterwards; a GELU feed-forward block with a
residual and LayerNorm follows each layer. Training runs the recurrence as a parallel scan (`linear_scan`: log₂ L
passes of recursive doubling); `step` folds one new event into a user's state in O(1) sequence work.

Heads (our reading of TME-PSR's "multihead LRU for several sub-interests"; the paper gives only an abstract): the
hidden size is split into H heads, each with its own recurrence over its slice and its own λ ring (head h starts
on the h-th of H equal bands of [r_min, r_max], from short to long memories). In the last layer each head reads
out a full-width vector, a sub-interest u_h; `interests="max"` scores an item by its best-matching interest (the
hidden state packs the H vectors, `num_interests = H`), `interests="mix"` by a learned, position-wise soft mix
Σ_h softmax(W[u_1..u_H])_h u_h. With H = 1 it is plain LRURec.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_seqrec.backbones.dropout import ByteDropout
from lightning_seqrec.backbones.registry import parameter_versions, register_backbone
from lightning_seqrec.errors import ConfigError

INTERESTS = ("mix", "max")


def linear_scan(u: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """All states `h_k = lam ⊙ h_{k-1} + u_k` (h_{-1} = 0) of inputs `u [B, L, ...]` with a per-channel `lam [...]`,
    by recursive doubling: after the pass with offset s each position holds the sum over its last 2s inputs, so
    ⌈log₂ L⌉ passes of whole-tensor work replace the loop over positions (lengths need not be powers of two)."""
    length, offset, power = u.shape[1], 1, lam
    while offset < length:
        shifted = torch.cat([u.new_zeros(u.shape[0], offset, *u.shape[2:]), u[:, :-offset]], dim=1)
        u = u + power * shifted
        offset, power = offset * 2, power * power
    return u


def ring_init(heads: int, size: int, r_min: float, r_max: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ν_log, θ_log, γ_log), each `[heads, size]`: |λ| uniform in area on head h's band of [r_min, r_max], phase
    uniform in [0, 2π), γ = sqrt(1 - |λ|²)."""
    bands = torch.linspace(r_min, r_max, heads + 1)
    low, high = bands[:-1, None], bands[1:, None]
    radius = torch.sqrt(torch.rand(heads, size) * (high**2 - low**2) + low**2)
    nu_log = torch.log(-torch.log(radius))
    theta_log = torch.log(2 * math.pi * torch.rand(heads, size).clamp(min=1e-4))
    gamma_log = torch.log(torch.sqrt(1 - radius**2))
    return nu_log, theta_log, gamma_log


class LRULayer(nn.Module):
    """One multihead LRU layer: head h maps its input slice `[d/H]` into a complex state of `state_size`, runs its
    own recurrence and reads out `out_dim` real features (`d/H` inside the stack, `d` per head in the last layer)."""

    def __init__(self, dim: int, heads: int, state_size: int, out_dim: int, r_min: float, r_max: float):
        super().__init__()
        self.heads, self.head_dim, self.out_dim = heads, dim // heads, out_dim
        nu_log, theta_log, gamma_log = ring_init(heads, state_size, r_min, r_max)
        self.nu_log, self.theta_log, self.gamma_log = (nn.Parameter(p) for p in (nu_log, theta_log, gamma_log))
        scale_in, scale_out = 1 / math.sqrt(self.head_dim), 1 / math.sqrt(state_size)
        self.in_real = nn.Parameter(torch.randn(heads, state_size, self.head_dim) * scale_in / math.sqrt(2))
        self.in_imag = nn.Parameter(torch.randn(heads, state_size, self.head_dim) * scale_in / math.sqrt(2))
        self.out_real = nn.Parameter(torch.randn(heads, out_dim, state_size) * scale_out)
        self.out_imag = nn.Parameter(torch.randn(heads, out_dim, state_size) * scale_out)
        self.out_bias = nn.Parameter(torch.zeros(heads, out_dim))

    def decay(self) -> torch.Tensor:
        """λ `[H, S]`, complex."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))

    def inputs(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """γ ⊙ (B x) `[B, L, H, S]`, complex; 0 at padded positions, so the state before a row's first item is 0
        however much padding precedes it."""
        x = x.unflatten(-1, (self.heads, self.head_dim)) * mask[..., None, None]
        gamma = torch.exp(self.gamma_log)
        real = torch.einsum("blhd,hsd->blhs", x, self.in_real) * gamma
        imag = torch.einsum("blhd,hsd->blhs", x, self.in_imag) * gamma
        return torch.complex(real, imag)

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """Re(C h) + bias `[..., H, out_dim]` of states `[..., H, S]`."""
        real = torch.einsum("...hs,hos->...ho", h.real, self.out_real)
        return real - torch.einsum("...hs,hos->...ho", h.imag, self.out_imag) + self.out_bias

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The heads' outputs of the scanned recurrence, side by side: `[B, L, H·out_dim]`."""
        return self.readout(linear_scan(self.inputs(x, mask), self.decay())).flatten(-2)

    def step_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Dense real forms of the per-head maps for `step`, on the real state `[Re h; Im h]` `[2·H·S]`: the stacked
        `[[Λ], [γ ⊙ B]]` `[2·H·S + d, 2·H·S]` (Λ multiplies the state by λ, γ ⊙ B maps the event in), C as
        `[2·H·S, H·out_dim]` and the flat bias, so one event costs a concatenation and two matmuls. Cached until a
        parameter changes (optimiser steps and loads bump their versions)."""
        key = parameter_versions(self)
        if getattr(self, "_step_key", None) != key or torch.is_grad_enabled():
            gamma = torch.exp(self.gamma_log)[..., None]
            block = torch.block_diag
            w_in = torch.cat([block(*(gamma * self.in_real)), block(*(gamma * self.in_imag))]).T
            lam = self.decay().flatten()
            a, b = torch.diag(lam.real), torch.diag(lam.imag)
            w_step = torch.cat([torch.cat([a, b], dim=1), torch.cat([-b, a], dim=1), w_in])
            w_out = torch.cat([block(*self.out_real.transpose(1, 2)), -block(*self.out_imag.transpose(1, 2))])
            weights = (w_step, w_out, self.out_bias.flatten())
            if torch.is_grad_enabled():
                return weights
            self._step_weights, self._step_key = tuple(w.detach() for w in weights), key  # the bias is a view
        return self._step_weights

    def step(self, state: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One event `x [B, d]`: the new real state `[B, 2·H·S]` and the outputs `[B, H·out_dim]`, as the scan
        computes them at a row's next position."""
        w_step, w_out, bias = self.step_weights()
        state = torch.cat([state, x], dim=-1) @ w_step
        return state, torch.addmm(bias, state, w_out)


class LRUBlock(nn.Module):
    """`LayerNorm(Dropout(y) + x)` around an `LRULayer`, then a GELU feed-forward block with residual and LayerNorm.
    In the last block of a multihead stack each head's output is a full-width sub-interest `[..., H, d]`."""

    def __init__(self, dim: int, heads: int, state_size: int, dropout: float, r_min: float, r_max: float, last: bool):
        super().__init__()
        self.last = last
        self.lru = LRULayer(dim, heads, state_size, dim if last else dim // heads, r_min, r_max)
        self.norm, self.drop = nn.LayerNorm(dim), ByteDropout(dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), ByteDropout(dropout), nn.Linear(4 * dim, dim))
        self.ffn_norm = nn.LayerNorm(dim)

    def finish(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Residuals, norms and feed-forward from the heads' outputs side by side, `y [..., H·o]`, and the block
        input `x [..., d]`; `[..., H, d]` from the last block of a multihead stack, `[..., d]` otherwise."""
        if self.last and self.lru.heads > 1:  # every head's interest keeps the block input as its residual
            y, x = y.unflatten(-1, (self.lru.heads, self.lru.out_dim)), x.unsqueeze(-2)
        out = self.norm(self.drop(y) + x)
        return self.ffn_norm(out + self.ffn(out))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.finish(self.lru(x, mask), x)

    def step(self, state: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state, y = self.lru.step(state, x)
        return state, self.finish(y, x)


@register_backbone("lru")
class LRUBackbone(nn.Module):
    """LRURec's encoder: `LayerNorm(Dropout(embeddings))`, then `num_layers` LRU blocks with `num_heads` heads each
    (complex state `state_expansion` × the head size), read out as one vector (H = 1, or `interests="mix"`) or H
    sub-interests (`interests="max"`). Defaults follow LRURec: 2 layers, dropout 0.2, ring [0.8, 0.99]."""

    traceable_step = True  # `step` has no Python control flow on values: inference may run it as a trace

    def __init__(
        self,
        embedding_dim: int = 64,
        num_layers: int = 2,
        num_heads: int = 1,
        interests: str = "mix",
        dropout: float = 0.2,
        r_min: float = 0.8,
        r_max: float = 0.99,
        state_expansion: int = 2,
    ):
        super().__init__()
        if num_layers < 1 or num_heads < 1 or embedding_dim % num_heads:
            raise ConfigError(
                f"LRU needs num_layers >= 1 and num_heads >= 1 dividing embedding_dim; got num_layers={num_layers}, "
                f"num_heads={num_heads}, embedding_dim={embedding_dim}."
            )
        if interests not in INTERESTS:
            raise ConfigError(f"interests={interests!r} is not one of {INTERESTS}: 'max' (best interest) or 'mix'.")
        if not 0 < r_min < r_max < 1:
            raise ConfigError(f"The λ ring needs 0 < r_min < r_max < 1, got r_min={r_min}, r_max={r_max}.")
        state_size = state_expansion * embedding_dim // num_heads
        self.input_norm, self.input_drop = nn.LayerNorm(embedding_dim), ByteDropout(dropout)
        self.blocks = nn.ModuleList(
            LRUBlock(embedding_dim, num_heads, state_size, dropout, r_min, r_max, last=i == num_layers - 1)
            for i in range(num_layers)
        )
        self.interests = interests
        self.num_interests = num_heads if interests == "max" else 1
        self.mix = nn.Linear(num_heads * embedding_dim, num_heads) if num_heads > 1 and interests == "mix" else None

    def combine(self, heads: torch.Tensor) -> torch.Tensor:
        """The hidden state from the last block's sub-interests `[..., H, d]`: packed `[..., H·d]` for `max`, the
        soft mix for `mix`; with H = 1 the last block's output `[..., d]` is the hidden state."""
        if self.blocks[-1].lru.heads == 1:
            return heads
        if self.mix is None:
            return heads.flatten(-2)
        weights = torch.softmax(self.mix(heads.flatten(-2)), dim=-1)
        return (weights[..., None] * heads).sum(-2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, batch: dict | None = None) -> torch.Tensor:
        x = self.input_norm(self.input_drop(x))
        for block in self.blocks:
            x = block(x, mask)
        return self.combine(x) * mask[..., None]

    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        """One zero state per layer, what `forward` starts each row from: the complex state's real parts, then its
        imaginary parts, `[B, 2·H·S]` (real, so `step` is two real matmuls)."""
        like = self.blocks[0].lru.nu_log
        return [like.new_zeros(batch_size, 2 * block.lru.nu_log.numel()) for block in self.blocks]

    def step(
        self, state: list[torch.Tensor], item_embedding: torch.Tensor, timestamp: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Fold one new item `[B, d]` into every layer's state (O(1) in the history's length): the new states and
        the hidden state `[B, d]` (`[B, H·d]` for `max`), equal to `forward`'s at the newest position."""
        x = self.input_norm(self.input_drop(item_embedding))
        states = []
        for layer_state, block in zip(state, self.blocks, strict=True):
            layer_state, x = block.step(layer_state, x)
            states.append(layer_state)
        return states, self.combine(x)
