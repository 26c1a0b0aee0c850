"""Command line: ``bench run | report | ls``."""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, Sequence

from bench import redact
from bench.errors import BenchError, InputError

EPILOG = """\
quick start:
  bench run                              the default sweep: MiniLM on SciFact, 4 dims x 9 precisions, BM25
  bench run --limit 20 --dims 384,64     a smoke run on 20 queries
  bench run tasks/sweeps/default.yaml --precisions float32,binary-rescore
  bench report results/<run-id>          tables and plots from a finished run
  bench compare results/<run-a> results/<run-b>    two runs side by side, paired tests
  bench ls tasks | bench ls models | bench ls runs
"""


_INTEGER = re.compile(r"-?[0-9]{1,12}")  # ASCII digits only: int() would take "1_0" and other scripts' digits


def _int(text: str) -> int:
    if not _INTEGER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(text)


def _path(text: str) -> Path:
    if not text.strip():  # Path("") is the current folder: never what an empty value meant
        raise argparse.ArgumentTypeError("expected a path, got an empty value")
    return Path(text)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _tolerance(text: str) -> float:
    """An absolute tolerance on a 0-1 score: 0 to 1, as a suite's ``tolerance`` is."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a tolerance is between 0 and 1 (scores are 0-1), got {text!r}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    """Comma-separated integers; an empty text is an empty list (which the schema refuses)."""
    items = [x.strip() for x in text.split(",")]
    if items == [""]:
        return ()
    if not all(_INTEGER.fullmatch(x) for x in items):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return tuple(int(x) for x in items)


def _str_list(text: str) -> tuple[str, ...]:
    """Comma-separated names; an empty text is an empty list (which the schema refuses)."""
    items = [x.strip() for x in text.split(",")]
    if items == [""]:
        return ()
    if any(not x for x in items):
        raise argparse.ArgumentTypeError(f"empty item in {text!r}")
    return tuple(items)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 2 with one line, like InputError
        print(f"bench: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("bench")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description="Benchmark text-embedding models: quality "
                     "across MRL dimensions and precisions, from one encode.", epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--version", action="version", version=f"bench {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND",
                                title="commands")  # fmt: skip
    for add in (_add_run, _add_report, _add_compare, _add_profile, _add_gate, _add_reproduce, _add_export, _add_ls,
                _add_query):
        add(sub)
    return parser


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="run a sweep (the bundled default without CONFIG)")
    run.add_argument("config", nargs="?", type=_path, help="sweep YAML (default: tasks/sweeps/default.yaml)")
    run.add_argument("--models", type=_str_list, help="override: comma-separated model names")
    run.add_argument("--tasks", type=_str_list, help="override: comma-separated task names")
    run.add_argument("--backends", type=_str_list, help="override: e.g. torch,torch-cuda-bfloat16")
    run.add_argument("--dims", type=_int_list, help="override: e.g. 384,256,128,64")
    run.add_argument("--precisions", type=_str_list, help="override: e.g. float32,int8,binary")
    run.add_argument("--batch-size", type=_int)
    run.add_argument("--top-k", type=_int, help="documents retrieved per query (default 1000)")
    run.add_argument("--rescore-multipliers", type=_int_list,
                     help="rescoring candidates = top-k x each, one cell per value (e.g. 1,2,4,10)")
    run.add_argument("--rescore-multiplier", type=_int, help="one multiplier (same as --rescore-multipliers M)")
    run.add_argument("--calibration", help="int8-family ranges fitted on: corpus | sample:N | file:PATH")
    run.add_argument("--context", type=_str_list,
                     help="how chunks of chunked tasks are embedded: independent,late,native")
    run.add_argument("--lexical", type=_str_list, help="lexical baselines: bm25,bm25-stemmed (or none)")
    run.add_argument("--limit", type=_int, help="smoke run: only the first N judged queries")
    run.add_argument("--output-dir", type=_path, help="where run folders go (default results/)")
    run.add_argument("--cache-dir", type=_path, help="embedding cache (default ~/.cache/bench)")
    run.add_argument("--run-id", help="name the run folder; an existing one resumes")
    run.add_argument("--tasks-dir", type=_path, help="task/model definitions (default tasks/)")
    run.add_argument("--executor", choices=("local", "dask"), help="where units run (default: this process)")
    run.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://127.0.0.1:8786")
    run.set_defaults(func=cmd_run)


def _add_report(sub) -> None:
    report = sub.add_parser("report", help="tables and plots from a finished run")
    report.add_argument("run_dir", type=_path)
    report.add_argument("--html", action="store_true", help="also write one self-contained report.html")
    report.set_defaults(func=cmd_report)


def _add_compare(sub) -> None:
    cmp = sub.add_parser("compare", help="runs side by side: shared cells, differences, paired tests")
    cmp.add_argument("runs", nargs="+", metavar="RUN", help="run folders or glob patterns (the first is the base)")
    cmp.add_argument("--across", choices=("runs", "models"), default="runs",
                     help="runs: each run is a side (default); models: each (model, backend) is a side")
    cmp.add_argument("--json", type=_path, help="also write the comparison as JSON here")
    cmp.add_argument("--html", type=_path, help="also write a self-contained HTML report here")
    cmp.add_argument("--plots", type=_path, help="with --across models: also write the plots into this folder")
    cmp.set_defaults(func=cmd_compare)


def _add_query(sub) -> None:
    query = sub.add_parser("query", help="questions across every run in a results folder (DuckDB)")
    query.add_argument("question", choices=("model", "budget", "task"), metavar="model|budget|task",
                       help="model NAME: its cells over time; budget BYTES: the best cell storing at most "
                            "BYTES per vector; task NAME: every model on a task")  # fmt: skip
    query.add_argument("value", metavar="NAME|BYTES", help="a model name, a byte budget or a task name")
    query.add_argument("--task", help="with budget: only this task")
    query.add_argument("--results-dir", type=_path, default=Path("results"), help="where the run folders are")
    query.set_defaults(func=cmd_query)


def _add_profile(sub) -> None:
    prof = sub.add_parser("profile", help="architecture-only cost curves (random weights, no download)")
    prof.add_argument("--models", type=_str_list, default=("pplx-embed-v1-0.6b",))
    prof.add_argument("--lengths", type=_int_list, default=(128, 512), help="fixed sequence lengths")
    prof.add_argument("--task", action="append", default=[], help="also a task's real length distribution")
    prof.add_argument("--task-sample", type=_int, default=32, help="texts sampled from each --task")
    prof.add_argument("--dtypes", type=_str_list, default=("bfloat16", "float32"))
    prof.add_argument("--batch-sizes", type=_int_list, default=(1, 8))
    prof.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    prof.add_argument("--budget", type=_number, default=60.0, help="seconds per cell before it is stopped")
    prof.add_argument("--repeats", type=_int, default=3)
    prof.add_argument("--output-dir", type=_path, default=Path("results"))
    prof.add_argument("--tasks-dir", type=_path)
    prof.set_defaults(func=cmd_profile)


def _add_gate(sub) -> None:
    base = sub.add_parser("baseline", help="write a regression baseline from a finished run")
    base.add_argument("run_dir", type=_path)
    base.add_argument("-o", "--output", type=_path, required=True)
    base.set_defaults(func=cmd_baseline)

    chk = sub.add_parser("check", help="gate a run against a baseline (exit 0 ok, 1 regression, 2 usage)")
    chk.add_argument("run_dir", type=_path)
    chk.add_argument("--baseline", type=_path, required=True)
    chk.add_argument("--metrics", type=_str_list, help="metrics to compare (default: main_score, paired by query)")
    chk.add_argument("--tolerance", action="append", default=[], metavar="METRIC=abs:X|rel:X",
                     help="per-metric tolerance (repeatable; METRIC may be 'quality' or 'cost'); "
                          "defaults: quality abs:0.005, cost rel:0.25")  # fmt: skip
    chk.add_argument("--hard-limit", action="append", default=[], metavar="METRIC=abs:X|rel:X",
                     help="a drop beyond this fails without a test (repeatable); default quality abs:0.03")
    chk.add_argument("--outside-ci", action="store_true",
                     help="weaker, unpaired: a drop beyond the tolerance must leave the baseline's CI "
                          "instead of being significant in the paired test")  # fmt: skip
    chk.add_argument("--json", type=_path, help="where to write the findings (default RUN_DIR/check.json)")
    chk.set_defaults(func=cmd_check)


def _add_reproduce(sub) -> None:
    rep = sub.add_parser("reproduce", help="run a suite and compare with its published scores")
    rep.add_argument("suite", help="a suite name from tasks/suites/ or a suite YAML path")
    rep.add_argument("--tolerance", type=_tolerance, help="absolute tolerance (default: the suite's, 0.005)")
    rep.add_argument("--backends", type=_str_list, help="override the suite's backend (one)")
    rep.add_argument("--limit", type=_int, help="smoke run: only the first N judged queries (will not match)")
    rep.add_argument("--output-dir", type=_path, default=Path("results"))
    rep.add_argument("--cache-dir", type=_path)
    rep.add_argument("--tasks-dir", type=_path)
    rep.set_defaults(func=cmd_reproduce)


def _add_export(sub) -> None:
    export = sub.add_parser("export-mteb", help="write a run in MTEB's result layout")
    export.add_argument("run_dir", type=_path)
    export.add_argument("out", type=_path)
    export.set_defaults(func=cmd_export_mteb)


def _add_ls(sub) -> None:
    ls = sub.add_parser("ls", help="list known tasks or models, or the runs in a results folder")
    ls.add_argument("what", choices=["tasks", "models", "runs"], metavar="tasks|models|runs", help="what to list")
    ls.add_argument("--tasks-dir", type=_path)
    ls.add_argument("--results-dir", type=_path, default=Path("results"), help="with runs: where the run folders are")
    ls.set_defaults(func=cmd_ls)


RUN_FLAGS = {  # sweep key -> the flag of bench run that overrides it
    "models": "--models", "tasks": "--tasks", "backends": "--backends", "dims": "--dims",
    "precisions": "--precisions", "batch_size": "--batch-size", "top_k": "--top-k",
    "rescore_multipliers": "--rescore-multipliers", "rescore_multiplier": "--rescore-multiplier",
    "calibration": "--calibration", "context": "--context", "lexical": "--lexical", "limit": "--limit", "output_dir": "--output-dir",
    "cache_dir": "--cache-dir", "executor": "--executor", "scheduler": "--scheduler",
}  # fmt: skip


def _flag_value(value):
    if isinstance(value, tuple):
        return list(value)
    return str(value) if isinstance(value, Path) else value


def cmd_run(args: argparse.Namespace) -> int:
    from bench import report, runner
    from bench.config import load_config

    if args.rescore_multiplier is not None and args.rescore_multipliers is not None:
        raise InputError("give --rescore-multipliers or --rescore-multiplier, not both")
    overrides = {key: (flag, _flag_value(getattr(args, key))) for key, flag in RUN_FLAGS.items()}
    config = load_config(args.config, overrides)
    run_dir = runner.run(config, tasks_dir=args.tasks_dir, run_id=args.run_id)
    print(report.render(run_dir))
    print(f"results: {run_dir}")
    return 0


def _at_least_one(value: int | None, flag: str) -> int | None:
    if value is not None and value < 1:
        raise InputError(f"{flag} must be at least 1, got {value}")
    return value


def cmd_report(args: argparse.Namespace) -> int:
    from bench import report

    print(report.render(args.run_dir))
    print(f"written: {args.run_dir / 'table.md'}, {args.run_dir / 'plots'}/")
    if args.html:
        from bench.html import render_html

        print(f"written: {render_html(args.run_dir)}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    import pandas as pd

    from bench import environment, profile, results
    from bench.encoders import cuda_available
    from bench.models import model_registry
    from bench.tasks import load_task, task_registry

    from bench.schemas import ProfileSchema, validated

    fields = list(ProfileSchema.model_fields)
    validated(ProfileSchema, {k: _flag_value(getattr(args, k)) for k in fields}, "bench profile",
              {k: "--" + k.replace("_", "-") for k in fields})  # fmt: skip
    if args.device == "cuda" and not cuda_available():
        raise InputError("--device cuda: CUDA is not available on this machine")
    models = [model_registry(args.tasks_dir).get(m) for m in args.models]
    profile.checked_models(models, args.lengths)
    registry = task_registry(args.tasks_dir)
    specs = {key: spec for name in args.task for key, spec in registry.expand(name).items()}
    tasks = {key: list(load_task(spec).corpus.values()) for key, spec in specs.items()}
    started = datetime.now(timezone.utc)
    run_dir = args.output_dir / f"profile-{started:%Y%m%d-%H%M%S}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{run_dir}: cannot create the output folder ({exc.strerror})") from None
    rows = profile.run_profile(models, args.lengths, args.dtypes, args.batch_sizes, args.device, args.budget,
                               args.repeats, tasks, args.task_sample)  # fmt: skip
    frame = pd.DataFrame(rows)
    results.write_frame(run_dir / "profile.parquet", frame)
    results.write_csv(run_dir / "profile.csv", frame)
    results.write_json(run_dir / "manifest.json", {
        "schema_version": results.SCHEMA_VERSION, "kind": "architecture-only profile", "run_id": run_dir.name,
        "started_at": started.isoformat(), "finished_at": datetime.now(timezone.utc).isoformat(),
        "config": {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
                   for k, v in vars(args).items() if k != "func"},
        **environment.git_state(), "packages": environment.package_versions(), "machine": environment.machine(),
    })  # fmt: skip
    profile.plot_profile(frame, run_dir / "plots")
    print(profile.profile_markdown(frame))
    print(f"results: {run_dir}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from bench.gate import make_baseline, per_query_path, write_baseline

    baseline, per_query = make_baseline(args.run_dir)
    write_baseline(args.output, baseline, per_query)
    print(f"baseline of {len(baseline['cells'])} cells written to {args.output} "
          f"(per-query scores: {per_query_path(args.output).name})")  # fmt: skip
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bench import gate
    from bench.metrics import ALL_METRICS
    from bench.results import write_json

    for metric in args.metrics or []:
        if metric not in ALL_METRICS:
            from bench.errors import unknown

            raise unknown("metric", metric, ALL_METRICS)
    tolerances = gate.parse_tolerances(args.tolerance)
    hard_limits = gate.parse_tolerances(args.hard_limit, "--hard-limit")
    baseline = gate.read_baseline(args.baseline)
    per_query = gate.read_baseline_per_query(args.baseline, baseline)
    findings = gate.check(args.run_dir, baseline, list(args.metrics or []), tolerances, args.outside_ci, hard_limits,
                          per_query)  # fmt: skip
    write_json(args.json or args.run_dir / "check.json", gate.findings_json(findings))
    print(gate.markdown(findings, baseline, args.run_dir.name))
    return 1 if any(f.regressed for f in findings) else 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from bench.encoders import parse_backend
    from bench.reproduce import load_suite, outcome_table, reproduce

    suite = load_suite(args.suite, args.tasks_dir)
    backend = parse_backend(args.backends[0], "--backends") if args.backends else None
    outcomes = reproduce(suite, args.output_dir, args.cache_dir, args.tolerance, backend,
                         _at_least_one(args.limit, "--limit"), args.tasks_dir)  # fmt: skip
    print(outcome_table(outcomes))
    folders = sorted({o.run_dir for o in outcomes if o.run_dir})
    if folders:
        print("results: " + ", ".join(folders))
    return 0 if all(o.status == "pass" for o in outcomes) else 1


def cmd_export_mteb(args: argparse.Namespace) -> int:
    from bench.export import export_mteb

    files = export_mteb(args.run_dir, args.out)
    print(f"wrote {len(files)} MTEB result files under {args.out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bench import compare_report
    from bench.cache import atomic_write_bytes
    from bench.compare import compare, expand_runs
    from bench.results import write_json

    report = compare(expand_runs(list(args.runs)), args.across)
    print(compare_report.markdown(report))
    if args.json:
        write_json(args.json, compare_report.report_json(report))
        print(f"written: {args.json}")
    pngs = compare_report.figures(report) if args.html or args.plots else {}
    if args.html:
        atomic_write_bytes(args.html, compare_report.html(report, pngs).encode("utf-8"))
        print(f"written: {args.html}")
    for name, png in pngs.items() if args.plots else ():
        atomic_write_bytes(args.plots / f"{name}.png", png)
        print(f"written: {args.plots / name}.png")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from bench import catalog
    from bench.report import markdown_table

    con = catalog.connect(catalog.find_runs(args.results_dir))
    if args.question == "model":
        frame = catalog.model_history(con, args.value)
    elif args.question == "task":
        frame = catalog.task_models(con, args.value)
    else:
        frame = catalog.best_under_budget(con, _budget(args.value), args.task)
    limited = 0
    if args.question == "task":
        limited = catalog.limited_runs(con, task=args.value)
    elif args.question == "budget":
        limited = catalog.limited_runs(con, task=args.task, max_bytes=_budget(args.value))
    if frame.empty:
        print(f"no cells match ({args.question} {args.value})")
    else:
        print(markdown_table(frame.map(_cell_text), 0))
    if limited:
        print(f"left out: {limited} --limit run(s) (smoke subsets, not the task's score); `bench query model` lists them")
    return 0


def _budget(text: str) -> float:
    try:
        value = _number(text)
    except argparse.ArgumentTypeError:
        value = -1.0
    if value < 0:
        raise InputError(f"bench query budget: expected a number of bytes >= 0, got {text!r}")
    return value


def _cell_text(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    import pandas as pd  # loaded already: the answer is a DataFrame

    return "–" if value is None or value is pd.NA else str(value)


def _list_runs(results_dir: Path) -> None:
    from bench import catalog

    for run in catalog.find_runs(results_dir):
        grid = "\t".join(f"{k}={','.join(map(str, v or []))}" for k, v in run.grid.items())
        cells = "-" if run.cells is None else str(run.cells)
        extra = f"\t{run.problem}" if run.problem else ""
        print(f"{run.run_id}\t{run.status}\t{run.started_at[:19] or '-'}\tcells={cells}\t{grid}{extra}")


def cmd_ls(args: argparse.Namespace) -> int:
    from bench.models import model_registry
    from bench.tasks import task_registry

    if args.what == "runs":
        _list_runs(args.results_dir)
    elif args.what == "tasks":
        for name in (reg := task_registry(args.tasks_dir)):
            spec = reg.get(name)
            print(f"{name}\t{spec.source}\tsplit={spec.split or '(all)'}\tsubset={spec.subset or '(all)'}\t"
                  f"main={spec.main_score or '(from MTEB)'}\t{spec.license}")
    else:
        for name in (reg := model_registry(args.tasks_dir)):
            spec = reg.get(name)
            mrl = ",".join(map(str, spec.mrl_dims)) or "-"
            params = f"{spec.n_parameters:,}" if spec.n_parameters else "-"
            print(f"{name}\t{spec.name}@{spec.revision[:10]}\tdim={spec.dim}\tmrl_dims={mrl}\t"
                  f"max_length={spec.max_length}\tparameters={params}")
    return 0


class Terminated(BaseException):
    """SIGTERM, turned into an exception so a run cleans up as it does on Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    redact.install()  # before anything can log or fail: every record and message is redacted
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed as one line)
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    func: Callable[[argparse.Namespace], int] = args.func
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        return func(args)
    except BenchError as exc:
        print(f"bench: error: {redact.redact(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bench: interrupted; finished cells and cached embeddings are kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`bench ls models | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Terminated:
        print("bench: terminated; finished cells and cached embeddings are kept", file=sys.stderr)
        return 143
    except Exception as exc:  # noqa: BLE001 - a bug: one redacted line, the traceback only with -v
        if args.verbose:
            print(redact.redact(traceback.format_exc()), file=sys.stderr, end="")
        print(f"bench: internal error: {type(exc).__name__}: {redact.redact(exc)} (a bug in bench; "
              "run with -v for the traceback)", file=sys.stderr)  # fmt: skip
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
