"""Autoregressive context networks: summarise z[<= t] into c[t].

Shapes: B batch, T steps, D latent dim, E context dim. Each network maps z (B, T, D) -> c (B, T, E) and is
causal by construction: c[t] never depends on z[t'] for t' > t.
"""
import torch
from torch import nn


class RNNContext(nn.Module):
    """A unidirectional GRU or LSTM (the CPC paper uses one GRU layer of 256 units)."""

    def __init__(self, in_dim: int, dim: int = 256, layers: int = 1, cell: str = "gru"):
        super().__init__()
        rnns = {"gru": nn.GRU, "lstm": nn.LSTM}
        if cell not in rnns:
            raise ValueError(f"unknown recurrent cell {cell!r}; choose one of {sorted(rnns)}")
        self.dim = dim
        self.rnn = rnns[cell](in_dim, dim, num_layers=layers, batch_first=True)

    def forward(self, z):  # (B, T, D)
        c, _ = self.rnn(z)
        return c  # (B, T, E)


class TransformerContext(nn.Module):
    """A causal (masked) transformer with learned positions, for sequences up to `max_len` steps."""

    def __init__(self, in_dim: int, dim: int = 256, layers: int = 2, heads: int = 4, max_len: int = 4096):
        super().__init__()
        self.dim = dim
        self.to_model = nn.Linear(in_dim, dim)
        self.pos = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, z):  # (B, T, D)
        T = z.shape[1]
        if T > self.pos.shape[0]:
            raise ValueError(f"sequence of {T} steps is longer than the transformer's max_len {self.pos.shape[0]}")
        h = self.to_model(z) + self.pos[:T]  # (B, T, E)
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=z.device, dtype=h.dtype)
        return self.norm(self.blocks(h, mask=mask, is_causal=True))  # (B, T, E)
