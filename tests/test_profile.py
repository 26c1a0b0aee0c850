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
