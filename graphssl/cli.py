"""Command line: ``graphssl pretrain | finetune | benchmark | compare | data | zoo | embed | show``."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from pathlib import Path

from graphssl.atomistic.emt import add_arguments as emt_arguments
from graphssl.atomistic.emt import run as run_emt
from graphssl.bench import run_benchmark
from graphssl.bench.compare import compare
from graphssl.bench.harness import parse_methods
from graphssl.core.config import DataConfig, RunConfig, load_config, options_text
from graphssl.core.errors import DataError, GraphSSLError, RunInterrupted
from graphssl.data.dataset import domain_of, load_dataset, resolve_source
from graphssl.data.sources import catalogue
from graphssl import zoo
from graphssl.engine.checkpoint import load_checkpoint
from graphssl.engine.embed import FORMATS, embed_file
from graphssl.engine.finetune import SELECTION_RULE, finetune
from graphssl.engine.pretrain import pretrain
from graphssl.engine.runtime import (
    check_data,
    check_objective,
    machine_description,
    prepare_cache,
    prepare_folder,
    validate,
)
from graphssl.molecule.shards import prepare_shards
from graphssl.transforms.coarsen import METHODS as COARSENERS


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help="YAML config file (see configs/)")
    parser.add_argument("--set", "-s", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config option, e.g. --set pretrain.epochs=5 (repeatable; values are YAML)")


def build_parser() -> argparse.ArgumentParser:
    epilog = options_text()
    parser = argparse.ArgumentParser(prog="graphssl", description="Self-supervised pretraining of graph neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("pretrain", help="pretrain an encoder with a self-supervised objective", epilog=epilog,
                       formatter_class=fmt, description="Pretrain model: with objective: on data:. Writes "
                       "output_dir/encoder.pt, and a resumable output_dir/last.pt every pretrain.checkpoint_every "
                       "steps, at epoch ends and on SIGTERM. Under torchrun, each process trains on its share "
                       "of every global batch.")
    _add_common(p)

    p = sub.add_parser("finetune", help="fine-tune an encoder on a labelled task", epilog=epilog, formatter_class=fmt,
                       description="Fine-tune on finetune.task. The test score is read at the best validation epoch.")
    _add_common(p)
    p.add_argument("--checkpoint", metavar="PATH",
                   help="pretrained encoder.pt or zoo:NAME (`graphssl zoo list`; overrides finetune.pretrained); "
                        "without either the same backbone is trained from scratch")

    p = sub.add_parser("zoo", help="pretrained encoders that ship with graphssl",
                       description="List the zoo, show an entry's model card, or add a pretrained encoder.pt "
                                   "as an entry. Fine-tune from an entry with --checkpoint zoo:NAME.")
    zoo_sub = p.add_subparsers(dest="zoo_command", required=True)
    zoo_sub.add_parser("list", help="every entry, one line each")
    show = zoo_sub.add_parser("show", help="an entry's model card (Markdown)")
    show.add_argument("name", help="entry name (with or without zoo:)")
    add = zoo_sub.add_parser("add", help="make a zoo entry (safetensors + card) from a `graphssl pretrain` run")
    add.add_argument("run", help="the run folder (or its encoder.pt)")
    add.add_argument("--name", required=True, help="entry name")
    add.add_argument("--into", default=None, help="zoo folder (default: the package's own)")
    add.add_argument("--description", default="", help="one paragraph for the card")
    add.add_argument("--command", dest="pretrain_command", default="", help="the command that pretrained it, for the card")

    p = sub.add_parser(
        "embed", help="embed every record of a file or folder with a pretrained encoder",
        description="Write one vector per input record (graph level, with the encoder's pooling) or per atom/face "
                    "(--level node) for any input graphssl reads: SMILES/CSV/TSV/SDF files, folders of CIF/POSCAR "
                    "files, extxyz/xyz/ASE db files, STEP files or folders. OUT.npy gets OUT's stem + .index.csv "
                    "(vector row -> input record and identifier; skipped records with their reason); .csv and "
                    ".parquet carry record and identifier next to each vector (and the index CSV too). Reads "
                    "record by record (no data cache), in eval mode, on the GPU when present.")
    p.add_argument("--checkpoint", required=True, metavar="PATH|zoo:NAME",
                   help="a pretrained encoder.pt (or its run folder) or zoo:NAME (`graphssl zoo list`)")
    p.add_argument("--input", required=True, metavar="PATH",
                   help="a data file or folder of any input kind, or a registered data set name; its domain "
                        "must be the encoder's")
    p.add_argument("--out", required=True, metavar="FILE", help=f"output file: {', '.join(FORMATS)} (parquet needs pyarrow)")
    p.add_argument("--level", choices=("graph", "node"), default="graph",
                   help="graph: one vector per record (per solid of a STEP file); node: one per atom or face")
    p.add_argument("--batch-size", type=int, default=64, help="graphs per forward pass (default 64)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--on-error", choices=("skip", "raise"), default="skip",
                   help="skip bad records and list them with their reason in the index (default), or stop at the first")
    p.add_argument("--smiles-column", help="SMILES column of a CSV/TSV input (guessed when empty)")
    p.add_argument("--plot", metavar="COLUMN",
                   help="also write OUT's stem + .map.png: a 2D map (UMAP if installed, else t-SNE) of the vectors, "
                        "coloured by this column of a CSV/TSV input")
    p.add_argument("--cache-dir", default=".graphssl_cache",
                   help="only for registered data set names that are generated or downloaded")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    p = sub.add_parser("benchmark", help="pretrain and fine-tune several methods against scratch", epilog=epilog,
                       formatter_class=fmt, description="Run benchmark.methods x benchmark.tasks x seeds x label "
                       "fractions; writes results.json, results.md and results.png into output_dir.")
    _add_common(p)

    p = sub.add_parser(
        "compare", help="does pretraining help on my data? scratch vs the zoo vs classical baselines",
        description="Fine-tune every zoo encoder of the input's domain and the same backbone from scratch, and fit "
                    "the classical baselines (molecules: ecfp-rf, rdkit-rf), on the scaffold split (random for "
                    "crystals) over several seeds; write results.md, results.json and the plots into --out and print "
                    "a verdict per method from the 95%% paired intervals against scratch.")
    p.add_argument("path", help="a labelled CSV/TSV or SDF of molecules, or a folder of CIF/POSCAR files")
    p.add_argument("--label", required=True, help="the column (SDF property) that holds the labels")
    p.add_argument("--smiles-column", help="SMILES column of a CSV/TSV (guessed when not given)")
    p.add_argument("--task", choices=("regression", "classification"),
                   help="default: two distinct label values are classification, numbers regression")
    p.add_argument("--out", help="folder for the reports (default runs/compare-<file stem>)")
    p.add_argument("--budget", type=float, default=1.0,
                   help="scales fine-tuning epochs (10 at 1.0) and forest trees (200 at 1.0); default 1.0")
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds, at least 2 (default 3)")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help="instead of the defaults: zoo:NAME, ecfp-rf, rdkit-rf (scratch always runs)")
    p.add_argument("--label-file", help="folder of crystals: the CSV of labels")
    p.add_argument("--id-column", help="folder of crystals: the label file's column of structure file names")
    p.add_argument("--threads", type=int, help="torch threads and forest jobs (default: every core)")
    p.add_argument("--on-error", choices=("skip", "raise"), default="skip",
                   help="skip bad records and report them (default), or stop at the first")
    p.add_argument("--cache-dir", default=".graphssl_cache", help="data-set cache folder")
    p.add_argument("--work-dir", help="keep the runs' folders here (default: a temporary folder, removed)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    p = sub.add_parser("show", help="pictures: a molecule's Hi-GMAE coarsening hierarchy")
    show_sub = p.add_subparsers(dest="show_command", required=True)
    hier = show_sub.add_parser(
        "hierarchy", help="draw a molecule's Hi-GMAE coarsening hierarchy, one panel per level (PNG)",
        description="Featurise SMILES as training does and coarsen it with the Hi-GMAE transform (the defaults of "
                    "objective.name: higmae unless changed below); level 0 is the atoms, level k colours each atom "
                    "by the level-k supernode it belongs to.")
    hier.add_argument("smiles", help="the molecule, as SMILES")
    hier.add_argument("--levels", type=int, help="coarse levels (default: objective higmae's)")
    hier.add_argument("--ratio", type=float, help="share of nodes removed per level (default: objective higmae's)")
    hier.add_argument("--coarsener", choices=COARSENERS, help="coarsening method (default: objective higmae's)")
    hier.add_argument("--out", default="hierarchy.png", help="output PNG (default hierarchy.png)")

    p = sub.add_parser("data", help="list, build, prepare (sharded, parallel) or generate data sets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    data_sub.add_parser("list", help="list the registered data sets")
    b = data_sub.add_parser("build", help="featurise a data set into the cache and print its report",
                            epilog=epilog, formatter_class=fmt)
    _add_common(b)
    prep = data_sub.add_parser(
        "prepare", help="featurise a molecule data set in parallel into on-disk shards that training streams from",
        description="Featurise NAME (a registry name or a CSV/SMI/SDF file) in --workers processes into --out: "
                    "shard files, report.json (every skipped record and why) and manifest.json. Train on it with "
                    "--set data.path=OUT; memory stays bounded by a couple of shards whatever the corpus size.")
    prep.add_argument("name", help="registry name (see `graphssl data list`) or a molecule file")
    prep.add_argument("--out", required=True, help="output folder")
    prep.add_argument("--workers", type=int, default=1, help="featurising processes (default 1)")
    prep.add_argument("--shard-size", type=int, default=100_000, help="graphs per shard file (default 100000)")
    prep.add_argument("--limit", type=int, help="only the first LIMIT records")
    prep.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                      help="stop at the first bad record (raise, default) or skip and report it (skip)")
    prep.add_argument("--smiles-column", help="SMILES column of a CSV/TSV file")
    prep.add_argument("--explicit-h", action="store_true", help="hydrogens as graph nodes")
    prep.add_argument("--duplicates", choices=("auto", "reject", "keep"), default="auto",
                      help="repeated molecules (same canonical SMILES): auto rejects them in labelled data and "
                           "keeps them in unlabeled corpora (default auto)")
    prep.add_argument("--max-atoms", type=int, default=5000,
                      help="molecules with more atoms are bad records (default 5000)")
    prep.add_argument("--descriptors", choices=("fast", "all"),
                      help="also compute RDKit 2D descriptors per molecule (for objective descriptors)")
    prep.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gen = data_sub.add_parser("generate", help="generate labelled data sets").add_subparsers(dest="generator",
                                                                                            required=True)

    emt_arguments(gen.add_parser("emt", help="alloy structures with EMT energies, forces and stress (extxyz)"))
    brep = gen.add_parser("brep", help="CAD parts with machining features: STEP files and per-face labels")
    brep.add_argument("--n", type=int, required=True, help="number of parts")
    brep.add_argument("--out", required=True, help="output folder")
    brep.add_argument("--seed", type=int, default=0, help="random seed (part i depends only on seed and i)")
    brep.add_argument("--classes", default="basic", metavar="SET",
                      help="class set: basic (9 classes on box/bar/L stock, default) or mfcad (the 24 MFCAD++ "
                           "machining features plus stock, 2 to 10 possibly intersecting features on a box)")
    brep.add_argument("--workers", type=int, default=1, help="parts built in this many processes (default 1)")
    brep.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _load(args: argparse.Namespace):
    return load_config(args.config, args.overrides)


def _prepare(args: argparse.Namespace) -> int:
    by_name = args.name in {entry[0] for entry in catalogue()}
    config = DataConfig(name=args.name if by_name else None, path=None if by_name else str(Path(args.name)),
                        smiles_column=args.smiles_column, limit=args.limit, on_error=args.on_error,
                        explicit_h=args.explicit_h, duplicates=args.duplicates, max_atoms=args.max_atoms,
                        descriptors=args.descriptors)
    config.check()
    if domain_of(config) != "molecule":
        raise DataError(f"'{args.name}' holds 3D structures or CAD parts; `data prepare` shards molecule data sets. "
                        "Build it into the cache with `graphssl data build --set data.name=...` (or data.path=...)")
    report = prepare_shards(resolve_source(config), config, args.out, workers=args.workers,
                            shard_size=args.shard_size, progress=not args.no_progress)
    print(f"{args.name}: read {report.read}, kept {report.kept}, skipped {report.skipped} "
          f"(reasons in {Path(args.out) / 'report.json'}); {report.shards} shards in {report.out_dir}; "
          f"{report.seconds:.1f} s, {report.per_second:.0f} molecules/s with {report.workers} worker(s)")
    return 0


def _machine() -> str:
    m = machine_description()
    return f"{m['cpu']}, {m['cores']} cores, {m['memory']}, CUDA {m['cuda']}"


def _zoo(args: argparse.Namespace) -> int:
    if args.zoo_command == "list":
        rows = zoo.summary_rows()
        if not rows:
            print("the zoo has no entries")
            return 0
        columns = list(rows[0])
        widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
        print("  ".join(c.ljust(widths[c]) for c in columns))
        for row in rows:
            print("  ".join(row[c].ljust(widths[c]) for c in columns))
        print("\nfine-tune from one with --checkpoint zoo:NAME; its card: graphssl zoo show NAME")
    elif args.zoo_command == "show":
        print(zoo.card_markdown(args.name), end="")
    else:
        run = Path(args.run).expanduser()
        payload = load_checkpoint(run / "encoder.pt" if run.is_dir() else run)
        folder = zoo.entry_from_pretrained(payload, args.name, args.into and Path(args.into), description=args.description,
                                           command=args.pretrain_command, machine=_machine())
        print(f"zoo entry '{args.name}' written to {folder}")
    return 0


def _check_benchmark(config: RunConfig) -> None:
    """The whole benchmark config, before the first pretraining: methods, their options, tasks."""
    methods = parse_methods(config.benchmark.methods)
    # a benchmark of zoo entries and baselines pretrains nothing, so needs no corpus
    validate(config, "benchmark", has_data=not any(m.objective for m in methods))
    for i, method in enumerate(methods):
        if method.objective is not None:
            check_objective(method.objective, method.options, f"benchmark.methods[{i}].")
    prepare_folder(config.output_dir, "output_dir")
    prepare_cache(config)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "graphssl " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "pretrain":
            path = pretrain(_load(args))
            if os.environ.get("RANK", "0") == "0":  # under torchrun, one line for the whole run
                print(f"pretrained encoder written to {path}")
        elif args.command == "finetune":
            result = finetune(_load(args), checkpoint=args.checkpoint)
            print(f"{result.task}: valid {result.metric} {result.valid:.4f}, test {result.metric} {result.test:.4f} "
                  f"at epoch {result.best_epoch} ({SELECTION_RULE})")
        elif args.command == "embed":
            summary = embed_file(args.checkpoint, args.input, args.out, level=args.level, batch_size=args.batch_size,
                                 device=args.device, on_error=args.on_error, smiles_column=args.smiles_column,
                                 plot=args.plot, progress=not args.no_progress, cache_dir=args.cache_dir)
            print(summary.text())
        elif args.command == "zoo":
            return _zoo(args)
        elif args.command == "compare":
            compare(args.path, args.label, smiles_column=args.smiles_column, task=args.task, out=args.out,
                    budget=args.budget, seeds=args.seeds, methods=args.methods, label_file=args.label_file,
                    id_column=args.id_column, threads=args.threads, cache_dir=args.cache_dir, on_error=args.on_error,
                    work_dir=args.work_dir, progress=not args.no_progress, command=command)
        elif args.command == "benchmark":
            config = _load(args)
            _check_benchmark(config)
            run_benchmark(config, command=command)
        elif args.command == "show":
            from graphssl.molecule.draw import draw_hierarchy  # RDKit: only when a molecule is drawn

            given = {k: getattr(args, k) for k in ("levels", "ratio", "coarsener") if getattr(args, k) is not None}
            path = draw_hierarchy(args.smiles, out=args.out, **given)
            print(f"wrote {path}")
        elif args.command == "data":
            if args.data_command == "list":
                for name, task_type, metric, description in catalogue():
                    print(f"{name:26s} {task_type or 'unlabeled':15s} {metric or '-':8s} {description}")
            elif args.data_command == "prepare":
                return _prepare(args)
            elif args.data_command == "generate" and args.generator == "emt":
                return run_emt(args)
            elif args.data_command == "generate":
                from graphssl.brep.generate import generate_dataset  # imports OCP: only when parts are made

                report = generate_dataset(args.n, args.out, seed=args.seed, progress=not args.no_progress,
                                          classes=args.classes, workers=args.workers)
                print(f"wrote {report.n_parts} parts to {report.out_dir} in {report.seconds:.1f} s "
                      f"({report.n_parts / max(report.seconds, 1e-9):.1f} parts/s, {report.workers} worker(s)); "
                      f"regenerated {report.n_regenerated}; features retried {report.feature_retries} times, skipped "
                      f"{report.n_skipped_features}; "
                      f"faces per class: {report.class_counts}")
            else:
                config = _load(args)
                check_data(config.data, "data.", corpus=True)
                load_dataset(config.data, prepare_cache(config), progress=config.progress)
    except RunInterrupted as exc:
        print(f"graphssl: {exc}", file=sys.stderr)
        return 128 + signal.SIGTERM
    except GraphSSLError as exc:
        print(f"graphssl: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
