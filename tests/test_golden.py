"""Golden values: the key numbers of the shared pipeline run (workflow_helpers.PIPELINE_CONFIG) are pinned in
tests/data/golden.csv, each with a tolerance that rounding and thread counts cannot reach but a change of
method would. An intended change is recorded with `make golden` (tests/README.md)."""

import math

import pandas as pd
import pytest

from workflow_helpers import GOLDEN, Golden, read_golden

ROWS = read_golden()


@pytest.mark.parametrize("golden", ROWS, ids=[g.key for g in ROWS])
def test_pinned_value(pipeline_results, golden):
    measured = golden.measure(pipeline_results.workdir)
    assert golden.matches(measured), (
        f"{golden.key} = {measured!r}, pinned {golden.value!r} +- {golden.allowed():.3g} ({golden.why}). "
        "If the change is intended, run `make golden` and explain the diff of tests/data/golden.csv."
    )


def test_the_table_pins_every_number_the_issue_names():
    # T, Delta_theory, Delta_empirical, sigma, epsilon, HZ p, Table 6, LiRA AUC, DP epsilon and accuracy,
    # bolt-on accuracy, query RMSE
    pinned = {(g.table.split("/")[0], g.column) for g in ROWS}
    wanted = {
        ("analysis", "T"),
        ("analysis", "delta_theory"),
        ("analysis", "delta_empirical"),
        ("analysis", "sigma"),
        ("analysis", "epsilon_theory"),
        ("analysis", "hz_p_min"),
        ("mia", "accuracy_known"),
        ("mia", "p_value_accuracy"),
        ("lira", "auc"),
        ("dp", "epsilon"),
        ("dp", "noise_multiplier"),
        ("dp", "test_accuracy"),
        ("perturbation", "accuracy_perturbed"),
        ("perturbation", "rmse"),
    }
    assert wanted - pinned == set()
    assert len({g.key for g in ROWS}) == len(ROWS)  # no row twice
    assert all(g.why and g.rel_tol >= 0 and g.abs_tol >= 0 for g in ROWS)
    finite = [g for g in ROWS if math.isfinite(g.value)]
    assert len(finite) >= len(ROWS) - 2  # only the non-private DP run's epsilon (inf) is not finite


def test_a_value_is_read_from_the_one_selected_row(tmp_path):
    table = tmp_path / "results" / "x"
    table.mkdir(parents=True)
    pd.DataFrame({"t": [10, 20], "mode": ["a", "a"], "v": [1.5, 2.5]}).to_parquet(table / "y.parquet")
    golden = Golden("x/y.parquet", "t=20;mode=a", "v", 2.5, 0.01, 0.0, "test")
    assert golden.measure(tmp_path) == 2.5
    assert golden.matches(2.52) and not golden.matches(2.53)  # 0.01 * 2.5 = 0.025
    with pytest.raises(KeyError, match="picks 2 rows"):
        Golden("x/y.parquet", "mode=a", "v", 2.5, 0, 0, "").measure(tmp_path)
    with pytest.raises(KeyError, match="no column 'w'"):
        Golden("x/y.parquet", "t=10", "w", 2.5, 0, 0, "").measure(tmp_path)
    assert Golden("x", "", "v", math.inf, 0, 0, "").matches(math.inf)
    assert not Golden("x", "", "v", math.inf, 0, 0, "").matches(1e300)
    assert Golden("x", "", "v", math.nan, 0, 0, "").matches(math.nan)
    assert not Golden("x", "", "v", 1.0, 0, 0.5, "").matches(math.nan)


def test_the_file_round_trips(tmp_path):
    from workflow_helpers import write_golden

    write_golden(ROWS, tmp_path / "g.csv")
    assert (tmp_path / "g.csv").read_text() == GOLDEN.read_text()  # full precision, stable formatting
