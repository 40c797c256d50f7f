"""InfoNCE implementations side by side on the paper's audio shapes, outputs checked equal.

    python benchmarks/infonce.py [--steps 5]

  batched       seqcpc.objectives.infonce.InfoNCE: one einsum of the predictions with each sequence's negatives
  materialised  the reference code's layout, kept here only: for every k, the candidates of every position
                are gathered into a (B, S, 1 + N, D) tensor and scored by an elementwise product and sum
Both use the same negatives, so loss and accuracy must agree.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.common import machine, write_table
from seqcpc.objectives.infonce import InfoNCE, target_latents


def materialised_loss(preds, z, neg_idx):
    """preds (B, K, T, D), z (B, T, D), neg_idx (B, N) -> (loss, acc_k), candidates built explicitly."""
    B, K, T, D = preds.shape
    S, N = T - K, neg_idx.shape[1]
    pos = target_latents(z, K)  # (B, K, S, D)
    negs = z.flatten(0, 1)[neg_idx]  # (B, N, D)
    losses, accs = [], []
    for k in range(K):
        cands = torch.cat([pos[:, k, :, None], negs[:, None].expand(B, S, N, D)], dim=2)  # (B, S, 1+N, D)
        logits = (preds[:, k, :S, None] * cands).sum(-1)  # (B, S, 1+N)
        pos_idx = torch.arange(B)[:, None] * T + k + 1 + torch.arange(S)  # (B, S)
        clash = torch.cat([torch.zeros(B, S, 1, dtype=torch.bool), pos_idx[..., None] == neg_idx[:, None]], -1)
        logits = logits.masked_fill(clash, float("-inf"))
        target = torch.zeros(B, S, dtype=torch.long)
        losses.append(F.cross_entropy(logits.transpose(1, 2), target))
        accs.append((logits.argmax(-1) == 0).float().mean())
    return torch.stack(losses).mean(), torch.stack(accs)


def timed(fn, steps):
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.mean(times[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    B, K, T, D, N = 8, 12, 128, 512, 128  # the CPC paper's audio configuration
    preds = torch.randn(B, K, T, D, requires_grad=True)
    z = torch.randn(B, T, D, requires_grad=True)
    crit = InfoNCE("batch", N)
    neg_idx = crit.sample_negatives(z)
    crit.sample_negatives = lambda *_: neg_idx

    loss_k, acc_k = crit.per_horizon(preds, z)
    loss_b, acc_b = materialised_loss(preds, z, neg_idx)
    torch.testing.assert_close(loss_k.mean(), loss_b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(acc_k, acc_b)

    def batched():
        crit(preds, z)[0].backward()

    def materialised():
        materialised_loss(preds, z, neg_idx)[0].backward()

    rows = []
    for name, fn in (("batched (seqcpc)", batched), ("materialised candidates", materialised)):
        seconds = timed(fn, args.steps)
        rows.append({"implementation": name, "forward + backward s": f"{seconds:.3f}"})
        print(rows[-1], flush=True)
    rows[1]["x slower"] = f"{float(rows[1]['forward + backward s']) / float(rows[0]['forward + backward s']):.1f}"
    meta = {**machine(), "shapes": f"B={B} K={K} T={T} D={D} N={N}", "loss": f"{loss_b.item():.5f} (both)"}
    write_table("infonce_cpu", ["implementation", "forward + backward s", "x slower"], rows, meta)


if __name__ == "__main__":
    main()
