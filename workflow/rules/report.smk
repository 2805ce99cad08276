# The final report: one self-contained HTML page built from the Parquet of every stage
# the config enables, plus Snakemake's own report (`snakemake --report report.zip`).


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
