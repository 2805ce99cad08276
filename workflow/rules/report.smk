# The final report: one self-contained HTML page built from the Parquet of every stage
# the config enables, plus Snakemake's own report (`snakemake --report report.zip`). A light
# aggregation: on a cluster it runs where Snakemake runs (localrule), not as a Slurm job.


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
        config=report_params,
        config_files=lambda wildcards: [str(f) for f in workflow.configfiles],
    script:
        "../scripts/report.py"
