"""Architecture-only profiling: exact parameter counts, bidirectional attention, budgets."""

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.models import model_registry
from bench.profile import BidirectionalMeanPooled, count_parameters, run_profile
from bench.testing import write_models
from tests.conftest import REPO

TINY = {"model_type": "qwen3", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128, "vocab_size": 1000}  # fmt: skip


@pytest.mark.parametrize("key,published", [("pplx-embed-v1-0.6b", 596_049_920), ("pplx-embed-v1-4b", 4_022_468_096)])
def test_registry_architectures_have_the_published_parameter_counts(key, published):
    model = model_registry(REPO / "tasks").get(key)
    assert count_parameters(model.architecture) == published == model.n_parameters


def test_attention_is_bidirectional():
    import torch

    net = BidirectionalMeanPooled(TINY, "float32", "cpu")
    ids = torch.tensor([[5, 6, 7, 8]])
    mask = torch.ones_like(ids)
    changed = ids.clone()
    changed[0, -1] = 9  # a later token must change the first position's state
    assert not torch.allclose(net.hidden(ids, mask)[0, 0], net.hidden(changed, mask)[0, 0])
    padded = torch.tensor([[5, 6, 7, 8, 0, 0]])  # padding must not change the unpadded states
    torch.testing.assert_close(net.hidden(padded, torch.tensor([[1, 1, 1, 1, 0, 0]]))[0, :4], net.hidden(ids, mask)[0],
                               rtol=1e-4, atol=1e-5)  # fmt: skip


class Tiny:
    key, architecture = "tiny", TINY


def test_profile_rows_are_architecture_only_with_costs():
    rows = pd.DataFrame(run_profile([Tiny()], [16, 64], ["float32"], [1, 4], "cpu", 60.0, 2,
                                    {"Toy": ["a b c", "longer text " * 20]}, 2))  # fmt: skip
    assert len(rows) == 6 and set(rows.kind) == {"architecture-only"}
    assert not any(c.startswith(("ndcg", "recall", "map_", "mrr")) for c in rows.columns)
    assert (rows.tokens_per_second > 0).all() and (rows.latency_p95_ms >= rows.latency_p50_ms).all()
    assert (rows.peak_rss_bytes > 0).all() and (rows.gflops_per_second > 0).all() and set(rows.status) == {"ok"}
    assert rows[rows.length == "16"].sequences_per_second.iloc[1] > 0  # batch 4
    assert rows.n_parameters.iloc[0] == count_parameters(TINY)


def test_a_cell_over_budget_is_stopped_and_later_ones_skipped():
    rows = pd.DataFrame(run_profile([Tiny()], [64, 4096], ["float32"], [1], "cpu", 1e-6, 3, {}, 1))
    assert rows.status.iloc[0].startswith("stopped:") and rows.passes.iloc[0] == 1
    assert rows.status.iloc[1].startswith("skipped: predicted") and np.isnan(rows.tokens_per_second.iloc[1])


def test_cli_profile_writes_rows_manifest_and_plots(tmp_path, capsys):
    write_models(tmp_path / "tasks", {"tiny": {"name": "test/tiny", "revision": "0", "dim": 64, "max_length": 64,
                                               "architecture": TINY}})  # fmt: skip
    assert main(["profile", "--models", "tiny", "--lengths", "8,32", "--batch-sizes", "2", "--dtypes", "float32",
                 "--repeats", "1", "--output-dir", str(tmp_path / "out"), "--tasks-dir", str(tmp_path / "tasks")]) == 0
    (run_dir,) = (tmp_path / "out").iterdir()
    assert len(pd.read_parquet(run_dir / "profile.parquet")) == 2
    assert {p.name for p in (run_dir / "plots").glob("*.png")} >= {"tokens_per_second_vs_length.png",
                                                                  "peak_memory_vs_length.png"}
    assert "architecture-only" not in capsys.readouterr().err


def test_a_cell_cut_by_the_budget_reports_the_flop_rate_of_what_was_timed(monkeypatch):
    """A forward pass that runs at exactly 10 TFLOP/s: a task cell whose budget stops it after
    its longest batches must still read 10 TFLOP/s (the FLOPs of the batches timed, not the
    sample's average per token times the timed tokens)."""
    import time
    import types

    from bench import profile
    from bench.flops import flops_per_token

    rate = 1e13
    arch = model_registry().get("pplx-embed-v1-0.6b").architecture

    class Fake:
        def __init__(self, arch, dtype, device):
            self.arch = arch

        def __call__(self, ids, mask):
            time.sleep(sum(n * flops_per_token(self.arch, n) for n in mask.sum(1).tolist()) / rate)

    lengths = [2048, 2048] + [64] * 40
    monkeypatch.setattr(profile, "BidirectionalMeanPooled", Fake)
    monkeypatch.setattr(profile.measure, "matmul_peak_gflops", lambda *a, **k: 20_000.0)
    monkeypatch.setattr(profile, "task_lengths", lambda texts, max_length, n, seed: list(lengths))
    model = types.SimpleNamespace(key="shape", architecture=arch)
    for budget in (30.0, 0.4):  # whole passes; cut after the two long texts of the warm-up
        row = run_profile([model], [], ["float32"], [1], "cpu", budget=budget, repeats=1, task_texts={"T": ["x"]},
                          task_sample=len(lengths))[0]  # fmt: skip
        assert row["gflops_per_second"] == pytest.approx(rate / 1e9, rel=0.1), row["status"]
    assert row["status"].startswith("stopped") and row["timed_mean_length"] > 1000 > row["mean_length"]


def test_a_cells_peak_memory_does_not_carry_an_earlier_cells(monkeypatch):
    """Memory an earlier, larger cell used and freed is handed back before the next cell's peak
    is taken: a short cell after a long one reads what it reads alone."""
    import types

    arch = dict(model_type="qwen3", hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                head_dim=64, intermediate_size=512, vocab_size=5000, max_position_embeddings=8192)  # fmt: skip
    model = types.SimpleNamespace(key="tiny", architecture=arch)
    rows = run_profile([model], [128, 4096, 128], ["float32"], [1], "cpu", budget=30, repeats=1, task_texts={},
                       task_sample=0)  # fmt: skip
    first, long, again = (r["peak_rss_bytes"] for r in rows)
    if first is None:
        pytest.skip("no peak RSS on this platform")
    assert long > first + 40 * 2**20, (first, long, again)  # the long cell does use more
    assert again < first + 10 * 2**20, (first, long, again)


def _counted_flops_per_token(config, length: int) -> float:
    """FLOPs per token of a model built from ``config`` on the meta device, counted by torch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModel

    config._attn_implementation = "eager"
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(input_ids=torch.zeros((1, length), dtype=torch.long, device="meta"))
    return counter.get_total_flops() / length


def test_the_flop_count_uses_the_shapes_transformers_builds():
    """Without ``head_dim`` Qwen3 builds heads of 128 dimensions, not hidden/heads (16 here): the
    count must be of the model that runs (it read 0.77x of it for pplx-embed-v1-0.6b's shapes)."""
    from bench.flops import flops_per_token
    from bench.profile import hf_config, require_architecture

    arch = {k: v for k, v in TINY.items() if k != "head_dim"}
    model = type("NoHeadDim", (), {"key": "nohd", "architecture": arch})()
    resolved = require_architecture(model)
    assert resolved["head_dim"] == 128
    assert flops_per_token(resolved, 32) == pytest.approx(_counted_flops_per_token(hf_config(arch), 32), rel=1e-9)


@pytest.mark.parametrize("family", ["gemma3_text", "olmo2", "granite", "cohere", "llama"])
def test_gated_mlp_families_are_counted_with_three_matrices(family):
    from bench.flops import flops_per_token
    from bench.profile import hf_config

    arch = {"model_type": family, "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 4, "head_dim": 64, "intermediate_size": 512, "vocab_size": 1000}  # fmt: skip
    assert flops_per_token(arch, 64) == pytest.approx(_counted_flops_per_token(hf_config(arch), 64), rel=1e-9)


@pytest.mark.parametrize("change,message", [
    ({"model_type": "bert"}, "runs the qwen2/qwen3 architectures bidirectionally; its `architecture` has model_type 'bert'"),
    ({"model_type": None}, "model_type None"),
    ({"intermediate_size": None}, "needs intermediate_size as positive integers"),
    ({"num_key_value_heads": 3}, "4 attention heads cannot share 3 key/value heads (num_key_value_heads must"),
    ({"num_key_value_heads": None}, "4 attention heads cannot share 32 key/value heads (not given: transformers' default"),
])  # fmt: skip
def test_an_architecture_profile_cannot_run_is_refused_before_timing(tmp_path, capsys, change, message):
    arch = {k: v for k, v in {**TINY, **change}.items() if v is not None}
    write_models(tmp_path / "tasks", {"bad": {"name": "test/bad", "revision": "0", "dim": 64, "architecture": arch}})
    code = main(["profile", "--models", "bad", "--lengths", "8", "--batch-sizes", "1", "--dtypes", "float32",
                 "--tasks-dir", str(tmp_path / "tasks"), "--output-dir", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_lengths_are_held_to_the_models_token_limit(tmp_path, capsys):
    write_models(tmp_path / "tasks", {"short": {"name": "test/short", "revision": "0", "dim": 64, "max_length": 32,
                                                "architecture": TINY}})  # fmt: skip
    code = main(["profile", "--models", "short", "--lengths", "64", "--batch-sizes", "1", "--dtypes", "float32",
                 "--tasks-dir", str(tmp_path / "tasks"), "--output-dir", str(tmp_path / "out")])  # fmt: skip
    assert code == 2 and "--lengths 64 is over model short's limit of 32 tokens" in capsys.readouterr().err
    short = type("Short", (), {"key": "short", "architecture": TINY, "max_length": 32})()
    rows = run_profile([short], [8], ["float32"], [1], "cpu", 60.0, 1, {"Long": ["many words here " * 40] * 3}, 3)
    task = next(r for r in rows if r["length"] == "task:Long")
    assert task["mean_length"] == 32  # cut at the model's limit, not at 32,768
