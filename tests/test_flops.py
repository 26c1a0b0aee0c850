import pytest

from bench.flops import flops_per_token, mean_flops_per_token

BERT = {"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
        "intermediate_size": 1536}  # fmt: skip


def test_bert_flops_are_twice_the_matmul_parameters_plus_attention():
    # 6 layers x (4 projections of 384x384 + 2 MLP matrices of 384x1536) = 21.2M weights
    weights = 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    assert flops_per_token(BERT, 0) == 2 * weights
    assert flops_per_token(BERT, 100) - flops_per_token(BERT, 0) == 6 * 4 * 100 * 384


def test_gated_mlp_and_grouped_kv_heads():
    qwen = {"model_type": "qwen3", "hidden_size": 1024, "num_hidden_layers": 28, "num_attention_heads": 16,
            "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 3072}  # fmt: skip
    per_layer = 2 * 1024 * (2048 + 2 * 1024) + 2 * 2048 * 1024 + 3 * 2 * 1024 * 3072
    assert flops_per_token(qwen, 0) == 28 * per_layer


def test_mean_over_lengths_weights_by_tokens():
    assert mean_flops_per_token(BERT, [10, 30]) == pytest.approx(
        (10 * flops_per_token(BERT, 10) + 30 * flops_per_token(BERT, 30)) / 40
    )
