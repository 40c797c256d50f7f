"""The long-tailed speech benchmark: CPC and SimCLR on raw audio, each with and without SDCLR's pruned
competitor, pretrained on a corpus whose speakers have power-law numbers of training utterances; the speech
probes of each (speaker, phone, few-shot, beside MFCC and random weights), the speaker probe also split into head
and tail speakers (the halves with the most and the fewest training utterances).

    python recipes/long_tail/speech.py --config recipes/long_tail/speech_table_cpu.yaml [key=value ...]

The table config names a seqcpc config (`pretrain:`, whose `prepare:` builds the long-tailed corpus) and the
methods (name -> overrides). Each method runs like the speech recipe into <out_dir>/<method> (skipped when done,
resumed when killed); the table is <out_dir>/results.{md,json}. `key=value` overrides go to the pretraining config.
"""
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from recipes.common import evaluate_once, prepare_data, pretrain_once, read_yaml_config, table_main
from seqcpc.config import load_config, with_overrides
from seqcpc.errors import ConfigError
from seqcpc.eval.report import markdown_table, write_report

COLUMNS = ("speaker", "speaker_head", "speaker_tail", "phone")


@dataclass
class SpeechTable:
    pretrain: str = ""  # the seqcpc config: the corpus (prepare), the model, the budget, the probes
    overrides: list[str] = field(default_factory=list)
    out_dir: str = "runs/long_tail_speech"
    methods: dict = field(default_factory=lambda: {"cpc": [], "simclr": ["objective.name=simclr"]})


def read_table(path) -> SpeechTable:
    table = read_yaml_config(path, SpeechTable)
    bad = [name for name, o in table.methods.items() if not isinstance(o, list) or name in ("mfcc", "random_init")]
    if not table.pretrain or not table.methods or bad:
        raise ConfigError(f"{path}: needs `pretrain:` (a seqcpc config) and `methods:` (name -> list of key=value "
                          f"overrides; mfcc and random_init are rows every table has){f', not {bad}' if bad else ''}")
    return table


def run_table(table: SpeechTable, overrides: list[str], log=print) -> dict:
    cfg = load_config(table.pretrain, [*table.overrides, *overrides])
    prepare_data(cfg.prepare)
    rows, minutes = {}, {}
    for name, extra in table.methods.items():
        log(f"== {name}")
        run_cfg = with_overrides(cfg, [*extra, f"train.out_dir={Path(table.out_dir) / name}"])
        evaluate_once(run_cfg, pretrain_once(run_cfg))
        out = Path(run_cfg.train.out_dir)
        results = json.loads((out / "probes" / "results.json").read_text())["results"]
        minutes[name] = json.loads((out / "summary.json").read_text())["elapsed_s"] / 60
        rows[name] = results["cpc"]  # the speech probes call the pretrained model's features "cpc"
    for baseline in (f"mfcc{cfg.probe.mfcc}", "random_init"):  # the same in every method's probes: the last's
        rows[baseline] = results[baseline]
    table_md = markdown_table(["features", *(f"{c} %" for c in COLUMNS), "head - tail"],
                              [[name, *(f"{100 * r[c]:.1f}" if c in r else "-" for c in COLUMNS),
                                f"{100 * (r['speaker_head'] - r['speaker_tail']):.1f}" if "speaker_head" in r else "-"]
                               for name, r in rows.items()])
    facts = (f"One corpus ({cfg.prepare.options}), {cfg.train.max_steps} steps of {cfg.data.batch_size} windows per "
             f"run; pretraining: " + ", ".join(f"{n} {m:.1f} min" for n, m in minutes.items()) +
             ". speaker_head / speaker_tail: mean per-speaker test accuracy of the half of the speakers with the "
             "most / fewest training utterances.")
    write_report(table.out_dir, "Long-tailed speech: speaker probe by head and tail speakers", facts, table_md,
                 {"rows": rows, "pretraining_minutes": minutes}, log)
    return rows


def main(argv=None) -> int:
    return table_main(__doc__, read_table, run_table, "long-tailed speech recipe", argv)


if __name__ == "__main__":
    sys.exit(main())
