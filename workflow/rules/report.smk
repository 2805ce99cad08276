# The final report: one self-contained HTML page built from the Parquet of every stage
# the config enables, plus Snakemake's own report (`snakemake --report report.zip`). A light
# aggregation: on a cluster it runs where Snakemake runs (localrule), not as a Slurm job.


def report_all_inputs(wildcards):
    """The report's tables by kind (report_inputs) plus the HZ power simulation's when enabled."""
    files = report_inputs(wildcards)
    files["hz_power"] = ["results/analysis/hz_power.parquet"] if config["hz_power"]["enabled"] else []
    return files


def report_all_params(wildcards):
    """The report's config slices (report_params) plus the HZ power simulation's and the training device."""
    params = report_params(wildcards)
    if config["hz_power"]["enabled"]:
        params["hz_power"] = dict(config["hz_power"])
    params["device"] = config["training"]["device"]
    return params


rule report:
    input:
        unpack(report_all_inputs),
    output:
        html=report(
            "results/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
        figures=report(
            directory("results/report/figures"),
            patterns=["{name}.png", "{name}.svg"],
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
    benchmark:
        benchmark_file("report", "report")
    localrule: True
    conda:
        ENV
    resources:
        runtime=runtime_min(30),
        mem_mb=4000,
    params:
        config=report_all_params,
        config_files=lambda wildcards: [str(f) for f in workflow.configfiles],
        repo=workflow.basedir,
    script:
        "../scripts/report.py"
