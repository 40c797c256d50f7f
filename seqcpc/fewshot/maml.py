"""MAML (Finn et al. 2017): a few SGD steps on the support set from shared initial weights, the loss of the
adapted weights on the queries trained through those steps.

Shapes: N ways, S = N K support items, R = N Q query items, F feature dim.
The classifier head (N, F) is not a learned initialisation (that would depend on the arbitrary order of an
episode's classes, and fix the number of ways): every episode starts it either from the support set's
prototypes, weight 2 p_c and bias -|p_c|^2, so that its first logits are a prototypical network's (Proto-MAML,
Triantafillou et al. 2020), or at zero (head_init=zero; on the image patch encoder from scratch this stayed at
chance in our trials, as the features of random weights differ little between items). `inner=all` adapts every
weight of the feature network (torch.func runs it with the adapted weights); `inner=head` adapts the head only
(ANIL, Raghu et al. 2020: far cheaper, since the support set is embedded once). Second-order meta-gradients
differentiate through the inner steps' gradients; `first_order` drops those terms. At test time the inner loop
runs `eval_inner_steps` steps.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from seqcpc.fewshot.learners import EpisodeConfig, EpisodicLearner, check_class_major, class_major, learner_entry
from seqcpc.fields import choice, number


@dataclass
class MAMLConfig(EpisodeConfig):
    """MAML on episodes (seqcpc/fewshot/maml.py)."""
    inner: str = choice("all", ["all", "head"])  # adapt every weight, or only the classifier head
    # the head each episode starts from: the support prototypes (as Proto-MAML) or zero
    head_init: str = choice("prototypes", ["prototypes", "zero"])
    inner_steps: int = number(5, min=1)  # SGD steps on the support set in meta-training
    eval_inner_steps: int = number(10, min=1)  # ... and when tested
    inner_lr: float = number(1e-3, above=0)  # the SGD step (larger ones diverged with inner=all, docs)
    first_order: bool = False  # drop the second-order terms of the meta-gradient


def sgd_step(params: dict, loss, lr: float, create_graph: bool) -> dict:
    """params - lr * d loss / d params; with create_graph the result stays differentiable through the gradient."""
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
    return {name: p - lr * (g if create_graph else g.detach()) for (name, p), g in zip(params.items(), grads)}


def head_loss(head: dict, f, y):
    return F.cross_entropy(F.linear(f, head["weight"], head["bias"]).float(), y)


class MAML(EpisodicLearner):
    def __init__(self, features: nn.Module, cfg: MAMLConfig, dim: int):
        super().__init__(features, cfg)
        self.dim, self.inner, self.first_order = dim, cfg.inner, cfg.first_order
        self.inner_lr, self.steps, self.eval_steps = cfg.inner_lr, cfg.inner_steps, cfg.eval_inner_steps
        self.feature_level, self.head_init = cfg.inner == "head", cfg.head_init

    def start_head(self, f_support, n_way: int) -> dict:
        """The episode's head: from the support features (S, F), class-major, or zero."""
        if self.head_init == "zero":
            return {"weight": f_support.new_zeros(n_way, self.dim, requires_grad=True),
                    "bias": f_support.new_zeros(n_way, requires_grad=True)}
        prototypes = class_major(f_support, n_way).mean(1)  # (N, F)
        head = {"weight": 2 * prototypes, "bias": -prototypes.pow(2).sum(-1)}
        if self.inner_loop()[1]:
            return head  # the meta-gradient also flows through the start
        return {k: v.detach().requires_grad_() for k, v in head.items()}

    def inner_loop(self) -> tuple[int, bool]:
        """(SGD steps, whether they stay differentiable): training steps, second order unless first_order;
        at test time eval_inner_steps, no graph."""
        if self.training:
            return self.steps, not self.first_order
        return self.eval_steps, False

    def episode_logits(self, support, y_support, query, n_way: int):
        if self.inner == "head":
            return super().episode_logits(support, y_support, query, n_way)
        with torch.enable_grad():  # the inner loop needs gradients, also under an evaluation's no_grad
            fast = dict(self.features.named_parameters())
            check_class_major(y_support, n_way)
            f = self.features(support)  # (S, F)
            head = self.start_head(f, n_way)
            steps, create_graph = self.inner_loop()
            for step in range(steps):
                if step:
                    f = functional_call(self.features, fast, (support,))  # with the adapted weights
                adapted = sgd_step({**fast, **{f"head.{k}": v for k, v in head.items()}},
                                   head_loss(head, f, y_support), self.inner_lr, create_graph)
                fast = {k: v for k, v in adapted.items() if not k.startswith("head.")}
                head = {k[len("head."):]: v for k, v in adapted.items() if k.startswith("head.")}
            logits = F.linear(functional_call(self.features, fast, (query,)), head["weight"], head["bias"])
        return logits if self.training else logits.detach()

    def classify(self, f_support, y_support, f_query, n_way: int):
        """inner=head: adapt the episode's head on the support features; the features stay as they are."""
        check_class_major(y_support, n_way)
        with torch.enable_grad():
            head = self.start_head(f_support, n_way)
            steps, create_graph = self.inner_loop()
            for _ in range(steps):
                head = sgd_step(head, head_loss(head, f_support, y_support), self.inner_lr, create_graph)
            logits = F.linear(f_query, head["weight"], head["bias"])
        return logits if self.training else logits.detach()


MAML_OBJECTIVE = learner_entry("maml", MAMLConfig, lambda features, cfg: MAML(features, cfg, features.dim),
                               "MAML: SGD steps on the support set from meta-learned weights (Proto-MAML head)")
