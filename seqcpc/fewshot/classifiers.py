"""Few-shot classifiers on frozen features, fitted on each episode's support set, many episodes at once.

Shapes: E episodes, N ways, K shots, Q queries per class, D feature dim.
Features are centred and L2-normalised beforehand (the mean of training-class items only). Each classifier takes the
support features (E, N, K, D), class-major, and the queries (E, N Q, D), and returns logits (E, N Q, N):
  prototypes  minus the squared distance to each class's mean support feature (Snell et al. 2017)
  linear      multinomial logistic regression on the support set (the "Baseline" of Chen et al. 2019)
  cosine      a cosine classifier: scale * cos(feature, class weight), weights started at the prototypes
              (Baseline++ of Chen et al. 2019, Gidaris & Komodakis 2018)
The two fitted ones run a fixed number of full-batch Adam steps from a fixed start, so results are deterministic.
"""
import torch
import torch.nn.functional as F

FIT_STEPS, FIT_LR, L2, COSINE_SCALE = 100, 0.05, 1e-3, 10.0


def prototypes(support, query):
    protos = support.mean(2)  # (E, N, D)
    return -torch.cdist(query, protos).pow(2)  # (E, R, N)


def _fit(logits_of, params: list, support):
    """Minimise the support set's cross-entropy (+ L2 on the weights) for every episode at once."""
    E, N, K, _ = support.shape
    y = torch.arange(N).repeat_interleave(K).expand(E, -1)  # (E, N K)
    opt = torch.optim.Adam(params, lr=FIT_LR)
    flat = support.flatten(1, 2)  # (E, N K, D)
    with torch.enable_grad():
        for _ in range(FIT_STEPS):
            # summed over episodes: each episode's weights get the gradient of its own mean loss
            loss = F.cross_entropy(logits_of(flat).transpose(1, 2), y, reduction="none").mean(1).sum()
            loss = loss + L2 * params[0].pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()


def linear(support, query):
    E, N, _, D = support.shape
    weight = torch.zeros(E, D, N, requires_grad=True)
    bias = torch.zeros(E, 1, N, requires_grad=True)

    def logits_of(f):
        return torch.baddbmm(bias, f, weight)  # (E, M, N)

    _fit(logits_of, [weight, bias], support)
    with torch.no_grad():
        return logits_of(query)


def cosine(support, query):
    weight = F.normalize(support.mean(2), dim=-1).transpose(1, 2).clone().requires_grad_()  # (E, D, N)

    def logits_of(f):
        return COSINE_SCALE * torch.bmm(F.normalize(f, dim=-1), F.normalize(weight, dim=1))

    _fit(logits_of, [weight], support)
    with torch.no_grad():
        return logits_of(query)


CLASSIFIERS = {"prototypes": prototypes, "linear": linear, "cosine": cosine}
