"""Shared by the benchmarks: machine facts, the matmul peak of this run, and writing result tables."""
import json
import platform
import time
from pathlib import Path

import torch

from seqcpc.config import load_config
from seqcpc.errors import SeqcpcError
from seqcpc.eval.report import markdown_table
from seqcpc.image.store import read_info

RESULTS = Path(__file__).resolve().parent / "results"


def image_config(path, overrides=()):
    """An image recipe's config, buildable without running its checks: the input channels are the prepared data
    set's when it is there, else those it would have (RGB when the recipe prepares RGB, else grey)."""
    cfg = load_config(path, overrides)
    if cfg.model.encoder.in_channels is None:
        try:
            cfg.model.encoder.in_channels = read_info(cfg.data.images)["channels"]
        except SeqcpcError:
            cfg.model.encoder.in_channels = 3 if cfg.prepare.options.get("mode") == "rgb" else 1
    return cfg


def speech_corpus(folder, speakers: int = 20, utterances: int = 20) -> Path:
    """A small eSpeak corpus (no held-out speakers) built in `folder`; its manifest."""
    from data_prep import espeak_corpus

    return espeak_corpus.build(Path(folder), speakers=speakers, heldout_speakers=0, utterances=utterances,
                               log=lambda *_: None)


def machine() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_peak_gflops(n: int = 2048, repeats: int = 10, device="cpu", dtype=torch.float32) -> float:
    """Best observed GFLOP/s of an n x n matmul: the practical peak the other numbers are compared with."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def write_table(name: str, columns: list[str], rows: list[dict], meta: dict) -> str:
    """Print a Markdown table and write it (and JSON with the machine facts) to benchmarks/results/."""
    table = markdown_table(columns, [[r.get(c, "") for c in columns] for r in rows])
    facts = ", ".join(f"{k}: {v}" for k, v in meta.items())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(f"# {name}\n\n{facts}\n\n{table}\n")
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"{facts}\n\n{table}\n\nwritten to {RESULTS / name}.md and .json")
    return table
