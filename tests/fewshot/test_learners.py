"""Prototypical networks, matching networks and MAML against plain loops and hand-computed steps."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqcpc.fewshot.maml import MAMLConfig
from seqcpc.fewshot.matching import MatchingConfig, MatchingNet
from seqcpc.fewshot.protonet import ProtoNet, ProtoNetConfig
from seqcpc.fewshot.maml import MAML


class Linear(nn.Module):
    """A tiny feature network: x (B, 3) -> (B, 2)."""

    def __init__(self):
        super().__init__()
        self.proj, self.dim = nn.Linear(3, 2), 2

    def forward(self, x):
        return self.proj(x)


def episode(n_way=3, k=2, q=2, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    f_support = torch.randn(n_way * k, dim, generator=g)
    return f_support, torch.arange(n_way).repeat_interleave(k), torch.randn(n_way * q, dim, generator=g)


def test_prototypical_logits_match_a_plain_loop():
    f_s, y_s, f_q = episode()
    logits = ProtoNet(nn.Identity(), ProtoNetConfig(n_way=3, k_shot=2)).classify(f_s, y_s, f_q, 3)
    for i, q in enumerate(f_q):
        for c in range(3):
            proto = sum(f_s[j] for j in range(len(f_s)) if y_s[j] == c) / 2
            assert logits[i, c].item() == pytest.approx(-((q - proto) ** 2).sum().item(), rel=1e-5)


@pytest.mark.parametrize("fce", [False, True])
def test_matching_logits_are_the_log_of_the_attention_summed_per_class(fce):
    f_s, y_s, f_q = episode()
    net = MatchingNet(nn.Identity(), MatchingConfig(n_way=3, k_shot=2, fce=fce, temperature=5.0), dim=4)
    logits = net.classify(f_s, y_s, f_q, 3)
    g, f = net.context(f_s, f_q) if fce else (f_s, f_q)
    for i in range(len(f_q)):
        cos = torch.stack([F.cosine_similarity(f[i], g[j], dim=0) for j in range(len(g))])
        attention = torch.softmax(5.0 * cos, dim=0)
        for c in range(3):
            p = sum(attention[j] for j in range(len(g)) if y_s[j] == c)
            assert logits[i, c].item() == pytest.approx(math.log(p.item()), abs=1e-5)
    assert torch.allclose(logits.exp().sum(1), torch.ones(len(f_q)), atol=1e-5)


def test_support_labels_must_be_class_major():
    f_s, y_s, f_q = episode()
    with pytest.raises(ValueError, match="class-major"):
        ProtoNet(nn.Identity(), ProtoNetConfig(n_way=3, k_shot=2)).classify(f_s, y_s.flip(0), f_q, 3)


def maml(first_order=False, steps=1, lr=0.5, head_init="zero"):
    torch.manual_seed(0)
    cfg = MAMLConfig(n_way=2, k_shot=1, n_query=1, inner="all", inner_steps=steps, eval_inner_steps=steps,
                     inner_lr=lr, first_order=first_order, head_init=head_init)
    return MAML(Linear(), cfg, dim=2)


def test_maml_inner_step_is_the_hand_computed_sgd_step():
    model = maml(steps=2, lr=0.5).eval()
    support, y = torch.randn(2, 3), torch.tensor([0, 1])
    query = torch.randn(4, 3)
    w, b = model.features.proj.weight.detach().clone(), model.features.proj.bias.detach().clone()
    hw, hb = torch.zeros(2, 2), torch.zeros(2)
    for _ in range(2):  # by hand: softmax regression on f = x w^T + b, gradients written out
        f = support @ w.T + b
        p = torch.softmax(f @ hw.T + hb, dim=1)
        d_logits = (p - F.one_hot(y, 2)) / len(y)  # d mean cross-entropy / d logits
        d_hw, d_hb, d_f = d_logits.T @ f, d_logits.sum(0), d_logits @ hw
        d_w, d_b = d_f.T @ support, d_f.sum(0)
        w, b, hw, hb = w - 0.5 * d_w, b - 0.5 * d_b, hw - 0.5 * d_hw, hb - 0.5 * d_hb
    expected = (query @ w.T + b) @ hw.T + hb
    assert torch.allclose(model.episode_logits(support, y, query, 2), expected, atol=1e-5)


def meta_gradient(first_order: bool, inner: str = "all"):
    model = maml(first_order=first_order, steps=2, head_init="prototypes")
    model.inner, model.feature_level = inner, inner == "head"
    model.train()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))  # 2 ways x (1 support + 1 query)
    loss, _ = model(x)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("inner", ["all", "head"])
def test_second_order_meta_gradients_differ_from_first_order_ones(inner):
    second, first = meta_gradient(False, inner), meta_gradient(True, inner)
    assert second.abs().sum() > 0 and first.abs().sum() > 0
    assert not torch.allclose(second, first, atol=1e-6)


def test_maml_adapts_under_an_evaluations_no_grad_and_returns_plain_logits():
    model = maml(steps=3).eval()
    with torch.no_grad():
        logits = model.episode_logits(torch.randn(2, 3), torch.tensor([0, 1]), torch.randn(3, 3), 2)
    assert logits.shape == (3, 2) and not logits.requires_grad
    assert logits.abs().sum() > 0  # the zero head moved
