# DP-SGD, SAM and regularisers against membership inference (ALGORITHMS.md sections 7 and 8):
# one shadow model per (dataset, model), one job per (configuration, repeat), then the summary tables.


rule dp_shadow:
    wildcard_constraints:
        model="cnn|resnet18",
    input:
        unpack(dp_shadow_inputs),
    output:
        "results/dp/shadow/{dataset}/{model}.parquet",
    log:
        "logs/dp/shadow/{dataset}_{model}.log",
    conda:
        ENV
    threads: config["training"]["threads"]
    resources:
        device=config["training"]["device"],
    params:
        run=dp_shadow_params,
    script:
        "../scripts/dp_shadow.py"


rule dp_train:
    wildcard_constraints:
        configuration=r"[A-Za-z][A-Za-z0-9_]*(-[A-Za-z0-9_.]+)?",
        repeat=r"\d+",
    input:
        unpack(dp_job_inputs),
    output:
        epochs="results/dp/runs/{configuration}/r{repeat}_epochs.parquet",
        examples="results/dp/runs/{configuration}/r{repeat}_examples.parquet",
    log:
        "logs/dp/{configuration}/r{repeat}.log",
    conda:
        ENV
    threads: config["training"]["threads"]
    resources:
        device=config["training"]["device"],
        mem_mb=config["training"]["memory_budget_mb"] + 2048,
    params:
        run=dp_job_params,
    script:
        "../scripts/dp_train.py"


rule dp_summary:
    input:
        epochs=dp_run_files("epochs"),
        examples=dp_run_files("examples"),
    output:
        summary="results/dp/summary.parquet",
        sweeps="results/dp/sweeps.parquet",
        outliers="results/dp/outliers.parquet",
        ledger="results/dp/ledger.parquet",
    log:
        "logs/dp/summary.log",
    conda:
        ENV
    params:
        study=dp_summary_params,
    script:
        "../scripts/dp_summary.py"
