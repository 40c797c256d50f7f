"""The `seqcpc` command line: `seqcpc pretrain`, `extract`, `probe`, `units` and `import-cpc-audio`."""
import argparse
import shlex
import sys

from seqcpc import modalities
from seqcpc.argtypes import count, positive
from seqcpc.config import load_config
from seqcpc.errors import ConfigError, Interrupted, report_errors


def pretrain_main(args) -> None:
    from seqcpc.train.loop import pretrain

    cfg = load_config(args.config, args.overrides)
    try:
        pretrain(cfg, resume=args.resume, overwrite=args.overwrite)
    except Interrupted as stop:
        if not stop.resumable:
            raise
        config = ["--config", args.config] if args.config else []
        command = shlex.join(["seqcpc", "pretrain", *config, *args.overrides, "--resume"])
        raise Interrupted(f"{stop}; resume with: {command}", resumable=True) from None


def extract_main(args) -> None:
    from seqcpc.extract import extract_files, extract_split

    what = tuple(dict.fromkeys(w.strip() for w in args.features.split(",")))  # in order, once each
    if args.npy_dir:
        written = extract_files(args.checkpoint, args.npy_dir, args.out, what, args.device)
    else:
        written = extract_split(args.checkpoint, args.out, args.split, what, args.batch_size, args.device)
    print(f"wrote {len(written)} feature files to {args.out}")


def probe_main(args) -> None:
    from seqcpc.config import with_overrides
    from seqcpc.objectives import registry
    from seqcpc.train.checkpoint import load_config_and_model

    cfg, model = load_config_and_model(args.checkpoint)
    saved, cfg = cfg, with_overrides(cfg, args.overrides)
    if cfg.model != saved.model or cfg.objective != saved.objective:
        raise ConfigError("seqcpc probe: model.* and objective.* keys describe the checkpoint's network and cannot be "
                          "overridden")
    rate = getattr(saved.data, "sample_rate", None)  # audio only: the rate the encoder's filters were learnt at
    if rate is not None and cfg.data.sample_rate != rate:
        raise ConfigError(f"seqcpc probe: data.sample_rate={cfg.data.sample_rate} but the model was trained at "
                          f"{rate} Hz; leave data.sample_rate unset: files at any rate are resampled to {rate} Hz "
                          f"when read")
    if args.episodic or registry.get(cfg.objective.name).episodic:  # a few-shot learner has only its episodes to be scored on
        from seqcpc.fewshot.evaluate import run_episodic_eval

        run_episodic_eval(cfg, model, args.out)
    else:
        modalities.get(cfg.model.modality).evaluate(cfg, model, args.out)


def units_main(args) -> None:
    from seqcpc.audio.units import run_units

    run_units(args.checkpoint, args.manifest, args.out, args.split, args.k, args.features, args.max_frames,
              args.seed, args.device)


def import_cpc_audio_main(args) -> None:
    from seqcpc.audio.cpc_audio import import_cpc_audio

    cfg, out = import_cpc_audio(args.checkpoint, args.out, args.overwrite)
    enc, ctx = cfg.model.encoder, cfg.model.context
    print(f"wrote {out}: conv encoder {enc.dim} ({enc.norm} norm), {ctx.kind} {ctx.layers}x{ctx.dim}; the "
          f"predictors are freshly initialised (only z and c are imported)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqcpc", description="Contrastive Predictive Coding on sequences")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (for bug reports)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain a CPC model")
    p.add_argument("--config", help="YAML config file; defaults are used for anything it leaves out")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config fields, e.g. optim.lr=1e-3")
    p.add_argument("--resume", action="store_true", help="continue the run in train.out_dir from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete what train.out_dir holds and start afresh")
    p.set_defaults(run=pretrain_main)

    e = sub.add_parser("extract", help="write frozen features (z, c or context layers) to .npy files")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--features", default="z,c", help="comma-separated names: z (encoder output), c (context "
                                                     "output), c1, c2, ... (context layer i, from 1; audio CPC)")
    e.add_argument("--split", default="val", choices=["train", "val"], help="split of the run's dataset")
    e.add_argument("--npy-dir", help="extract from every .npy sequence in this folder instead of a split")
    e.add_argument("--batch-size", type=positive, default=16)
    e.add_argument("--device", default="cpu")
    e.set_defaults(run=extract_main)

    q = sub.add_parser("probe", help="frozen-feature probes against baselines: speaker / phone / few-shot for "
                                     "speech, linear / label efficiency / few-shot for images; episodic few-shot "
                                     "evaluation with --episodic (the only one for a few-shot learner)")
    q.add_argument("--checkpoint", required=True)
    q.add_argument("--out", required=True, help="folder for results.md, results.json and plots")
    q.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.manifest=... probe.episodes=500")
    q.add_argument("--episodic", action="store_true",
                   help="N-way K-shot episodes on the classes never trained on (probe.ways x probe.shots): "
                        "classifiers fitted on frozen features, or a few-shot learner's own episodes")
    q.set_defaults(run=probe_main)

    u = sub.add_parser("units", help="discrete units: k-means on an audio model's frames, written per utterance "
                                     "(units.txt, centroids.npy), with phone purity and PNMI when the corpus has "
                                     "phones.txt")
    u.add_argument("--checkpoint", required=True)
    u.add_argument("--manifest", required=True, help="the corpus's manifest.tsv")
    u.add_argument("--out", required=True, help="folder for units.txt, centroids.npy and results.{md,json}")
    u.add_argument("--split", default="test", choices=["train", "test", "heldout"],
                   help="the utterances to fit k-means on and to write units of")
    u.add_argument("--k", type=positive, default=50, help="number of units")
    u.add_argument("--features", default="c", choices=["c", "z"], help="context (c) or encoder (z) frames")
    u.add_argument("--max-frames", type=count, default=1_000_000,
                   help="fit on at most this many frames, drawn at random (0: all); every frame gets a unit")
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--device", default="cpu")
    u.set_defaults(run=units_main)

    i = sub.add_parser("import-cpc-audio", help="convert a facebookresearch/CPC_audio checkpoint (a published "
                                                "model, or a training checkpoint with checkpoint_args.json beside "
                                                "it) into a seqcpc checkpoint for extract and probe")
    i.add_argument("--checkpoint", required=True, help="the CPC_audio .pt file")
    i.add_argument("--out", required=True, help="the seqcpc checkpoint to write (never the --checkpoint itself)")
    i.add_argument("--overwrite", action="store_true", help="replace the file at --out if there is one")
    i.set_defaults(run=import_cpc_audio_main)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    # key=value overrides may come before or after flags such as --resume: argparse leaves the later ones over
    args, extra = parser.parse_known_args(argv)
    stray = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = args.overrides + extra
    if args.command == "pretrain" and args.resume and args.overwrite:
        print("seqcpc: error: --resume and --overwrite exclude each other", file=sys.stderr)
        return 2
    return report_errors(lambda: args.run(args), "seqcpc", debug=args.debug)
