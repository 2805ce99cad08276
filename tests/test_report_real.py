"""The report built from the real tables of the shared pipeline run (perturbation, DP, MIA and LiRA stages):
every part finds the columns it reads. Moved from tests/test_report.py, where they needed a local
`make run` and were skipped in CI."""

import html
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from report_fixtures import CONFIG, VERDICT_WORDS
from sgd_privacy.report import build_from_files
from workflow_helpers import chromium_run


def build(tmp_path, files):
    out = tmp_path / "report"
    summary = build_from_files(files, CONFIG, out / "index.html", out / "figures", out / "tables")
    return summary, (out / "index.html").read_text(), out


def test_report_builds_from_the_real_perturbation_and_dp_tables(pipeline_results, tmp_path):
    real = {
        "bolt_on": pipeline_results.files("results/perturbation/*/bolt_on.parquet"),
        "query_attack": pipeline_results.files("results/perturbation/*/query_attack.parquet"),
        **{f"dp_{n}": pipeline_results.files(f"results/dp/{n}.parquet") for n in ("summary", "sweeps", "outliers")},
        "ledger": pipeline_results.files("results/dp/ledger.parquet"),
    }
    assert all(real.values()), real  # the shared run made every table
    summary, page, out = build(tmp_path, real)
    assert summary.shown == ["dp", "output_perturbation", "ledger"]
    assert "Left out" not in page  # every part found the columns it reads
    assert {"dp_dp_privacy_utility", "output_perturbation_bolt_on_accuracy", "output_perturbation_query_attack"} <= set(
        summary.figures
    )
    ledger = pd.read_csv(out / "tables" / "ledger_ledger.csv")
    assert list(ledger.columns) == list(pd.read_parquet(real["ledger"][0]).columns)


def test_the_ledger_holds_the_query_experiments_dp_sgd_models(pipeline_results):
    """Each perturbed experiment's DP-SGD model is a run of the ledger on its dataset, at the epsilon the query
    stage's own table records (the shared run's DP stage trains on mnist5k, so these datasets hold it alone)."""
    ledger = pipeline_results.table("results/dp/ledger.parquet").set_index("dataset")
    experiments = pipeline_results.config["experiments"]
    for path in pipeline_results.files("results/perturbation/*/query_attack.parquet"):
        query = pd.read_parquet(path)
        dp = query[query["api"] == "dp_sgd"].iloc[0]
        row = ledger.loc[experiments[query["experiment"].iloc[0]]["dataset"]]
        assert row["stages"] == "perturbation 1" and row["dp_runs"] == 1
        assert row["largest_run_epsilon"] == row["basic_epsilon"] == dp["dp_epsilon"]
    assert "dp " in ledger.loc["mnist5k", "stages"]


def test_report_builds_from_the_real_mia_tables(pipeline_results, tmp_path):
    real = {
        "mia_table6": pipeline_results.files("results/mia/*/table6.parquet"),
        "mia_attacks": pipeline_results.files("results/mia/*/attacks.parquet"),
        "mia_bounds": pipeline_results.files("results/mia/*/epsilon_bounds.parquet"),
        "lira_summary": pipeline_results.files("results/lira/*/summary.parquet")[:1],
        "lira_roc": pipeline_results.files("results/lira/*/roc.parquet")[:1],
        "lira_bounds": pipeline_results.files("results/lira/*/epsilon_bounds.parquet")[:1],
    }
    assert all(real.values()), real
    summary, page, out = build(tmp_path, real)
    assert summary.shown == ["mia"]
    assert "Left out" not in page  # every part found the columns it reads
    assert summary.figures == ["mia_mia_known_hidden", "mia_lira_roc"]
    table6 = pd.read_csv(out / "tables" / "mia_mia_table6.csv")
    assert len(table6) == sum(len(pd.read_parquet(p)) for p in real["mia_table6"])
    bounds = pd.read_csv(out / "tables" / "mia_epsilon_bounds.csv")
    assert len(bounds) == sum(len(pd.read_parquet(p)) for p in real["mia_bounds"] + real["lira_bounds"])


def test_provenance_names_the_device_of_every_real_shard(pipeline_results):
    """The shared run trained on the CPU: every shard's metadata says so, and the banner counts them all."""
    from sgd_privacy.report.banner import collect_provenance

    shards = pipeline_results.files("results/train/*/shards/*.parquet")
    assert shards
    devices = collect_provenance([], pipeline_results.workdir, shards)["devices"]
    assert list(devices.values()) == [len(shards)]
    (record,) = devices
    assert record.startswith("cpu (GPU none, CUDA none, cuDNN none, torch ")


def test_snakemakes_own_report_holds_the_figures_as_png_and_svg(pipeline_clone):
    """`snakemake --report` on the shared run's results: the archive has every report figure in both formats."""
    import zipfile

    from workflow_helpers import run_snakemake

    run_snakemake(pipeline_clone, "--report", "report.zip", timeout=600)
    folder = pipeline_clone / "results/report/figures"
    figures = {p.stem for p in folder.glob("*.png")}
    assert figures and figures == {p.stem for p in folder.glob("*.svg")}
    with zipfile.ZipFile(pipeline_clone / "report.zip") as archive:
        names = archive.namelist()
    for suffix in (".png", ".svg"):
        held = {n.rsplit("/", 1)[-1].removesuffix(suffix) for n in names if n.endswith(suffix)}
        assert figures <= held, (suffix, sorted(figures - held)[:5])


# ---------------------------------------------------------------- the real report in a real browser
# Each interval column (`<metric>_lo`, `<metric>_hi`) of the report's tables within its metric's range.
RANGES = {r"accuracy|auc|p_err|tpr|fpr|fnr": (0.0, 1.0), r"advantage": (-1.0, 1.0)}


def check_rendered_report(workdir: Path, chromium: str, tmp: Path) -> dict[str, int]:
    """The verdict issue's done-when on a pipeline run's own report (`workdir`/results/report), read from the
    DOM Chromium built: the banner with scale and provenance, every study comparison one of three verdicts
    worded as its class says and counted in the banner, how T was found and how many runs converged for each
    trained experiment (flagged where T is not a convergence point), and every interval in its range.
    Returns the verdict counts."""
    out = workdir / "results" / "report"
    dom = chromium_run(chromium, tmp, "--dump-dom", (out / "index.html").as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = html.unescape(dom.stdout).replace("<wbr>", "")
    start = page.index('<section id="banner"')
    banner = page[start : page.index("</section>", start)]
    assert "scale and what it can show" in banner
    assert re.search(r"This run uses \d+ to \d+ seeds per dataset against the study's 800", banner), banner[:2000]
    text = re.sub(r"<[^>]+>", " ", banner)
    for item in ("Commit: ", "Commit date: ", "Config file(s): ", "Packages:  python ", "Device: "):
        assert item in text, (item, text[-1500:])
    notes = re.findall(r'<p class="note (\w+)">([^<]*)</p>', page)
    verdicts = [(tone, said) for tone, said in notes if tone in VERDICT_WORDS]
    for tone, said in notes:
        worded = [t for t, words in VERDICT_WORDS.items() if said.startswith(words)]
        assert worded == ([tone] if tone in VERDICT_WORDS else []), (tone, said)
    counts = {t: sum(1 for tone, _ in verdicts if tone == t) for t in VERDICT_WORDS}
    assert (
        f"{counts['agrees']} comparisons agree with the studies, {counts['differs']} differ, and "
        f"{counts['cannot_tell']} cannot tell at this size." in banner
    )
    trained = sorted(p.parent.name for p in (workdir / "results" / "train").glob("*/convergence.parquet"))
    assert trained
    for name in trained:
        shards = sorted((workdir / "results" / "train" / name / "shards").glob("*.parquet"))
        keys = pd.concat([pd.read_parquet(f, columns=["seed", "replace_index", "init"]) for f in shards])
        table = pd.read_parquet(workdir / "results" / "train" / name / "convergence.parquet").iloc[0]
        found = re.search(
            rf"{re.escape(name)}: T = \d+ \(([^)]*)\); (\d+) of (\d+) runs converged, (\d+) did not", page
        )
        assert found, f"no convergence line for {name}"
        how, converged, total, did_not = found.group(1), *map(int, found.groups()[1:])
        assert total == len(keys.drop_duplicates())  # every trained run, counted from the shards themselves
        assert (converged, did_not) == (table["n_converged"], table["n_not_converged"])
        if how != "convergence point":
            assert f"{name}: T = " in page and "T is not a convergence point" in page
    for table in sorted((out / "tables").glob("*.csv")):
        frame = pd.read_csv(table)
        for column in frame.columns:
            stem, _, end = column.rpartition("_")
            ranges = [r for pattern, r in RANGES.items() if end in ("lo", "hi") and re.search(pattern, stem)]
            if ranges and pd.api.types.is_numeric_dtype(frame[column]):
                lo, hi = ranges[0]
                assert frame[column].dropna().between(lo, hi).all(), (table.name, column)
    return counts


# The same checks on another run's report: SGD_PRIVACY_REPORT_RUN=<a workdir after `make run`> adds a case.
RUNS = ["shared run"] + (["SGD_PRIVACY_REPORT_RUN"] if os.environ.get("SGD_PRIVACY_REPORT_RUN") else [])


@pytest.mark.slow
@pytest.mark.parametrize("run", RUNS)
def test_chromium_shows_the_real_runs_banner_verdicts_convergence_and_intervals(run, request, chromium, tmp_path):
    """The shared pipeline run's report (and, on request, e.g. the default run's): at this size some study
    comparisons cannot be told, and the page says so."""
    if run == "shared run":
        workdir = request.getfixturevalue("pipeline_results").workdir
    else:
        workdir = Path(os.environ["SGD_PRIVACY_REPORT_RUN"])
    counts = check_rendered_report(workdir, chromium, tmp_path)
    assert counts["cannot_tell"] >= 1 and sum(counts.values()) >= 5, counts
