"""The privacy ledger holds every DP model the pipeline trains: the DP stage's runs and the output-perturbation
query experiment's DP-SGD models, with or without the DP stage."""

import math

import numpy as np
import pandas as pd
import pytest
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

from sgd_privacy.dp.ledger import ledger_runs, ledger_table, query_stage_runs
from sgd_privacy.perturbation import query_api as qa
from workflow_helpers import planned, tiny_config
from workflow_helpers import run_snakemake as snakemake

pytestmark = pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")
ORDERS = [1 + k / 10.0 for k in range(1, 100)] + list(range(12, 64))
SETTINGS = {
    "k_values": [1, 4],
    "query_noise": 1.0,
    "nearby_radius": 0.01,
    "attack_examples": 20,
    "seed": 0,
    # 200 training rows of D_1 (201 base rows, row 1 replaced), batches of 50: q = 1/4, 4 steps per epoch
    "dp_sgd": {"noise_multiplier": 1.3, "max_grad_norm": 1.0, "epochs": 3, "batch_size": 50, "lr": 0.5},
}


def opacus_epsilon(noise: float, q: float, steps: int, delta: float) -> float:
    """Opacus's RDP analysis of `steps` sampled Gaussian steps, written out here (not the ledger's code)."""
    rdp = compute_rdp(q=q, noise_multiplier=noise, steps=steps, orders=ORDERS)
    return float(get_privacy_spent(orders=ORDERS, rdp=rdp, delta=delta)[0])


@pytest.fixture(scope="module")
def query_table() -> pd.DataFrame:
    """The query experiment's own table (the stage's function) on a small logistic-regression problem."""
    g = np.random.default_rng(0)
    d = 4
    w_true = np.r_[g.normal(size=d), 0.1]
    runs = pd.DataFrame(
        [{"experiment": "toy", "seed": s, "replace_index": 1, "init": "variable", "diverged": False} for s in range(3)]
    )
    weights = np.array([w_true + 0.1 * g.normal(size=d + 1) for _ in range(3)])
    x = g.normal(size=(301, d))
    y = (x @ w_true[:-1] + w_true[-1] > 0).astype(np.int64)
    arrays = {"x_train": x[:201], "y_train": y[:201], "x_test": x[201:], "y_test": y[201:]}
    return qa.query_tables(runs, weights, arrays, 1e-4, SETTINGS)


def test_the_query_experiments_dp_model_is_ledgered_without_the_dp_stage(query_table):
    dp_rows = query_table[query_table["api"] == "dp_sgd"]
    recorded_epsilon, recorded_delta = float(dp_rows["dp_epsilon"].iloc[0]), float(dp_rows["dp_delta"].iloc[0])
    ledger = ledger_table(ledger_runs(None, query_stage_runs(query_table, {"toy": "toyset"})), None)
    row = ledger.set_index("dataset").loc["toyset"]
    assert (row["runs"], row["dp_runs"], row["non_private_runs"]) == (1, 1, 0)
    assert row["stages"] == "perturbation 1"
    # one run: every composition is that run's own epsilon, the one the stage's table records, at its delta
    assert row["basic_epsilon"] == row["largest_run_epsilon"] == recorded_epsilon
    assert row["rdp_epsilon"] == pytest.approx(recorded_epsilon, rel=1e-9)
    assert row["rdp_delta"] == recorded_delta == 1e-4 and row["basic_delta"] == 1e-4
    # and the booking the ledger composes is the training's: 3 epochs x 4 Poisson batches at q = 1/4
    assert row["rdp_epsilon"] == pytest.approx(opacus_epsilon(1.3, 0.25, 12, 1e-4), rel=1e-9)
    assert math.isfinite(row["epsilon_all_runs"]) and row["epsilon_all_runs"] == row["rdp_epsilon"]


def test_the_query_models_compose_with_the_dp_stages_runs_on_the_same_dataset(query_table):
    dp_final = pd.DataFrame(
        [
            {"configuration": "cmp-dpsgd", "repeat": 0, "dataset": "toyset", "epsilon": 2.0, "delta": 1e-5}
            | {"accounted_noise_multiplier": 1.1, "sample_rate": 0.01, "accounted_steps": 300},
            {"configuration": "cmp-sgd", "repeat": 0, "dataset": "other", "epsilon": math.inf, "delta": 1e-5}
            | {"accounted_noise_multiplier": 0.0, "sample_rate": 0.01, "accounted_steps": 300},
        ]
    )
    query = query_stage_runs(query_table, {"toy": "toyset"})
    ledger = ledger_table(ledger_runs(dp_final, query), 1e-5).set_index("dataset")
    toy = ledger.loc["toyset"]
    assert (toy["runs"], toy["dp_runs"]) == (2, 2) and toy["stages"] == "dp 1, perturbation 1"
    assert toy["basic_epsilon"] == pytest.approx(2.0 + float(query["epsilon"].iloc[0]))
    assert toy["basic_delta"] == pytest.approx(1e-5 + 1e-4)
    # RDP: both runs' curves added, converted at the smaller delta (the DP stage's 1e-5), computed here directly
    both = compute_rdp(q=0.01, noise_multiplier=1.1, steps=300, orders=ORDERS)
    both = both + compute_rdp(q=0.25, noise_multiplier=1.3, steps=12, orders=ORDERS)
    assert toy["rdp_delta"] == 1e-5
    assert toy["rdp_epsilon"] == pytest.approx(float(get_privacy_spent(orders=ORDERS, rdp=both, delta=1e-5)[0]))
    other = ledger.loc["other"]
    assert (other["dp_runs"], other["non_private_runs"]) == (0, 1) and other["epsilon_all_runs"] == math.inf


def test_query_tables_written_before_the_ledger_read_them_are_named(query_table):
    old = query_table.drop(columns=["dp_noise_multiplier", "dp_accounted_steps"])
    with pytest.raises(ValueError, match="lack dp_accounted_steps, dp_noise_multiplier.*rerun the query_attack jobs"):
        query_stage_runs(old, {"toy": "toyset"})
    with pytest.raises(ValueError, match="no runs"):
        ledger_runs(None, query_stage_runs(query_table.iloc[:0], {}))


def test_a_config_without_the_dp_stage_still_builds_the_ledger(workdir):
    import yaml

    (workdir / "config/config.yaml").write_text(yaml.safe_dump(tiny_config()))
    counts = planned(snakemake(workdir, "-n"))
    assert counts["query_attack"] == 1 and counts["privacy_ledger"] == 1 and "dp_summary" not in counts
    # nothing trains a DP model: no ledger
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(tiny_config(perturbation={"experiments": []})))
    counts = planned(snakemake(workdir, "-n"))
    assert "privacy_ledger" not in counts and "query_attack" not in counts
