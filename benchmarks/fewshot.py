"""Few-shot test cost: seconds per test episode of each learner on the glyph recipe's network, the reference
being the prototypical network (features of an episode's items, then distances), in the same run.

    python benchmarks/fewshot.py [--episodes 5] [--threads 2]

The learners are built from recipes/fewshot/glyphs_cpc_cpu.yaml and glyphs_cpu.yaml's settings (patch encoder
pooled to 3x3 cells, 10 inner steps for MAML at test time) on random 28x28 images: the cost of an episode does
not depend on the weights. Each episode is run from its inputs (the recipe embeds every item once for the
learners that classify features, which makes their episodes cheaper still).
"""
import argparse
import time

import torch

from benchmarks.common import image_config, machine, write_table
from seqcpc.builders import build_model

MAML = ["objective.eval_inner_steps=10", "objective.inner_lr=0.001"]
LEARNERS = {"protonet": [], "matching": [], "maml, head adapted (CPU recipe)": ["objective.inner=head", *MAML],
            "maml, every weight adapted": ["objective.inner=all", *MAML]}


def seconds_per_episode(learner, n_way: int, k_shot: int, n_query: int, episodes: int) -> float:
    support, query = torch.rand(n_way * k_shot, 1, 28, 28), torch.rand(n_way * n_query, 1, 28, 28)
    labels = torch.arange(n_way).repeat_interleave(k_shot)
    with torch.no_grad():
        learner.episode_logits(support, labels, query, n_way)  # warm-up
        t = time.perf_counter()
        for _ in range(episodes):
            learner.episode_logits(support, labels, query, n_way)
    return (time.perf_counter() - t) / episodes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = ["objective.pool=3"]
    settings = [(5, 1), (5, 5), (20, 1), (20, 5)]
    rows, reference = [], {}
    for name, extra in LEARNERS.items():
        objective = name.split(",")[0]
        cfg = image_config("recipes/fewshot/glyphs_cpc_cpu.yaml", [f"objective.name={objective}", *base, *extra])
        learner = build_model(cfg).eval()
        row = {"learner": name}
        for n_way, k_shot in settings:
            s = seconds_per_episode(learner, n_way, k_shot, 15, args.episodes)
            key = f"{n_way}-way {k_shot}-shot"
            reference.setdefault(key, s)
            row[key] = f"{s:.3f} s ({s / reference[key]:.1f}x)"
        rows.append(row)
        print(row, flush=True)
    meta = {**machine(), "episodes timed": args.episodes, "queries per class": 15,
            "reference": "protonet on the same episodes (x = times its seconds)"}
    write_table(f"fewshot_episode_cpu{'' if args.threads == 2 else f'_{args.threads}thread'}",
                ["learner", *[f"{n}-way {k}-shot" for n, k in settings]], rows, meta)


if __name__ == "__main__":
    main()
