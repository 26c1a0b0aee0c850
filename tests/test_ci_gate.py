"""The project's own regression gate: a small MiniLM sweep against the committed baseline."""

from bench.cli import main
from tests.conftest import REPO


def test_ci_smoke_sweep_holds_against_the_committed_baseline(tmp_path, capsys):
    sweep = REPO / "tasks" / "sweeps" / "ci-smoke.yaml"
    assert main(["run", str(sweep), "--output-dir", str(tmp_path), "--run-id", "ci"]) == 0
    code = main(["check", str(tmp_path / "ci"), "--baseline", str(REPO / "results" / "baselines" / "ci-smoke.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "✅ no regressions" in out
