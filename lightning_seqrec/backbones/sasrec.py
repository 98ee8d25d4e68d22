"""SASRec (Kang & McAuley, 2018): a causal self-attention encoder over the item sequence."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_seqrec.backbones.dropout import ByteDropout
from lightning_seqrec.backbones.registry import register_backbone


class CausalSelfAttentionBlock(nn.Module):
    """Pre-norm block: causal multi-head attention through `scaled_dot_product_attention`, then an FFN.

    SDPA picks the fused kernel (flash / memory-efficient) on CUDA and a vectorised one on CPU.
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding_dim ({dim}) must be divisible by num_heads ({num_heads}).")
        self.num_heads, self.dropout = num_heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), ByteDropout(dropout), nn.Linear(ffn_dim, dim))
        self.drop = ByteDropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.num_heads, dim // self.num_heads).unbind(2)
        attn = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        x = x + self.drop(self.proj(attn.transpose(1, 2).reshape(b, length, dim)))
        return x + self.drop(self.ffn(self.norm2(x)))


@register_backbone("sasrec")
class SASRecBackbone(nn.Module):
    """Learned positions + `num_blocks` causal attention blocks; position t sees items 1..t only.

    Inputs are left-padded. Padded keys are masked, but every query may attend to itself, so a fully padded
    row never takes a softmax over nothing (the NaN trap of causal + key-padding masks); padded outputs are
    zeroed so they cannot leak into anything downstream.
    """

    def __init__(
        self,
        embedding_dim: int = 64,
        max_len: int = 50,
        num_blocks: int = 2,
        num_heads: int = 2,
        ffn_dim: int | None = None,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.max_len = max_len
        self.position = nn.Embedding(max_len, embedding_dim)
        nn.init.normal_(self.position.weight, std=0.02)
        self.input_norm, self.input_drop = nn.LayerNorm(embedding_dim), ByteDropout(dropout)
        self.blocks = nn.ModuleList(
            CausalSelfAttentionBlock(embedding_dim, num_heads, ffn_dim or 4 * embedding_dim, dropout)
            for _ in range(num_blocks)
        )
        self.final_norm = nn.LayerNorm(embedding_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, batch: dict | None = None) -> torch.Tensor:
        """`x [B,L,d]` embedded items, `mask [B,L]` True where a real item is -> hidden states `[B,L,d]`."""
        length = x.shape[1]
        if length > self.max_len:
            raise ValueError(f"Sequence length {length} exceeds this SASRec's max_len {self.max_len}.")
        positions = self.position.weight[self.max_len - length :]  # left padding: newest item = last position
        h = self.input_drop(self.input_norm(x + positions))
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=x.device)
        attn_mask = ((causal & mask[:, None, :]) | eye)[:, None]  # [B,1,L,L]
        for block in self.blocks:
            h = block(h, attn_mask)
        return self.final_norm(h) * mask[..., None]
