"""Autoregressive context networks: summarise z[<= t] into c[t].

Shapes: B batch, T steps, D latent dim, E context dim. Each network maps z (B, T, D) -> c (B, T, E) and is
causal by construction: c[t] never depends on z[t'] for t' > t. `layers(z)` gives every layer's output, L of
them, each (B, T, E); the last is forward(z).
"""
import torch
from torch import nn
from torch.func import functional_call


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

    def layers(self, z) -> list:
        """[c_1, ..., c_L], each (B, T, E). A multi-layer nn.GRU/LSTM returns only its last layer, so each layer runs
        alone: a one-layer twin (on the meta device, never a submodule) called with layer l's own weights, which
        keeps the parameter names (rnn.weight_ih_l{l}, ...) that checkpoints and importers rely on."""
        if self.rnn.num_layers == 1:
            return [self(z)]
        outputs, h = [], z
        for l in range(self.rnn.num_layers):
            twin = type(self.rnn)(h.shape[-1], self.dim, bias=self.rnn.bias, batch_first=True, device="meta")
            weights = {name: getattr(self.rnn, f"{name[:-1]}{l}") for name, _ in twin.named_parameters()}
            h, _ = functional_call(twin, weights, (h,))  # (B, T, E)
            outputs.append(h)
        return outputs


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

    def positioned(self, z):
        """(the blocks' input h (B, T, E), the causal mask (T, T))."""
        T = z.shape[1]
        if T > self.pos.shape[0]:
            raise ValueError(f"sequence of {T} steps is longer than the transformer's max_len {self.pos.shape[0]}")
        h = self.to_model(z) + self.pos[:T]  # (B, T, E)
        return h, nn.Transformer.generate_square_subsequent_mask(T, device=z.device, dtype=h.dtype)

    def forward(self, z):  # (B, T, D)
        h, mask = self.positioned(z)
        return self.norm(self.blocks(h, mask=mask, is_causal=True))  # (B, T, E)

    def layers(self, z) -> list:
        """Each block's output, [h_1, ..., h_L], each (B, T, E). The blocks normalise their inputs (pre-norm), so
        h_1 .. h_{L-1} are the residual stream as the next block reads it, and the last is normalised as forward's."""
        h, mask = self.positioned(z)
        outputs = []
        for block in self.blocks.layers:
            h = block(h, src_mask=mask, is_causal=True)  # (B, T, E)
            outputs.append(h)
        outputs[-1] = self.norm(h)
        return outputs
