# DP-SGD, SAM and regularisers against membership inference (docs/methods.md, sections 7 and 8):
# one shadow model per (dataset, model), one job per (configuration, repeat), then the summary tables.


rule dp_shadow:
    input:
        unpack(dp_shadow_inputs),
    output:
        "results/dp/shadow/{dataset}/{model}.parquet",
    log:
        "logs/dp/shadow/{dataset}_{model}.log",
    benchmark:
        benchmark_file("dp_shadow", "{dataset}/{model}")
    wildcard_constraints:
        model="cnn|resnet18|resnet50",
    conda:
        ENV
    threads: config["training"]["threads"]
    resources:
        runtime=runtime_min(120),
        gpu=training_gpus(),
        mem_mb=8000,
        device=config["training"]["device"],
        checkpoint_minutes=str(config["training"]["checkpoint_minutes"]),
    params:
        run=dp_shadow_params,
    script:
        "../scripts/dp_shadow.py"


rule dp_train:
    input:
        unpack(dp_job_inputs),
    output:
        epochs="results/dp/runs/{configuration}/r{repeat}_epochs.parquet",
        examples="results/dp/runs/{configuration}/r{repeat}_examples.parquet",
    log:
        "logs/dp/{configuration}/r{repeat}.log",
    benchmark:
        benchmark_file("dp_train", "{configuration}/r{repeat}")
    wildcard_constraints:
        configuration=r"[A-Za-z][A-Za-z0-9_]*(-[A-Za-z0-9_.]+)?",
        repeat=r"\d+",
    conda:
        ENV
    threads: config["training"]["threads"]
    resources:
        runtime=runtime_min(240),
        gpu=training_gpus(),
        device=config["training"]["device"],
        checkpoint_minutes=str(config["training"]["checkpoint_minutes"]),
        mem_mb=training_mem_mb(nothing_held),
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
    log:
        "logs/dp/summary.log",
    benchmark:
        benchmark_file("dp_summary", "summary")
    conda:
        ENV
    resources:
        runtime=runtime_min(30),
        mem_mb=4000,
    params:
        study=dp_summary_params,
    script:
        "../scripts/dp_summary.py"
