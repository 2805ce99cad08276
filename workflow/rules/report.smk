# The final report (issue 12): one self-contained HTML page built from the Parquet of every stage
# the config enables, plus Snakemake's own report (`snakemake --report report.zip`).

# Analysis tables the report reads, per analysed experiment (kinds of sgd_privacy.report.sections).
REPORT_ANALYSIS_KINDS = [
    "distances_over_t",
    "distances_at_T",
    "epsilon",
    "sigma_per_dataset",
    "stability",
    "distribution_tests",
    "nonnormal_weights",
    "umap",
    "kmeans_spans",
]


def report_inputs(wildcards):
    """Every table the report reads, by kind; a kind with no files leaves its section out with a note."""
    experiments = list(config["experiments"])
    files = {
        "dataset_meta": [dataset_files(d)["meta"] for d in used_datasets()],
        "runs": [f"results/train/{e}/runs.parquet" for e in experiments],
        "convergence": [f"results/train/{e}/convergence.parquet" for e in experiments],
    }
    for kind in REPORT_ANALYSIS_KINDS:
        files[kind] = [f"results/analysis/{e}/{kind}.parquet" for e in analysed_experiments()]
    # Other stages add their tables here (kind -> files; the columns each kind needs are in the
    # docstrings of sgd_privacy/report/sections.py): mia_summary, mia_roc, dp_epochs,
    # dp_epsilon_sweep, dp_clipping_sweep, outliers, output_perturbation, repeated_queries, ledger.
    return files


def report_params(wildcards):
    """The config slices the report states beside its figures and tables."""
    experiments = list(config["experiments"])
    return {
        "experiments": {e: config["experiments"][e] for e in experiments},
        "analysis": config["analysis"],
    }


rule report:
    input:
        unpack(report_inputs),
    output:
        html=report(
            "results/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
        figures=report(
            directory("results/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
        tables=report(
            directory("results/report/tables"),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Tables",
        ),
    log:
        "logs/report/report.log",
    conda:
        ENV
    params:
        config=report_params,
    script:
        "../scripts/report.py"
