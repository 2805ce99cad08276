# Data stage: raw files -> preprocessed train/validation/test arrays with a JSON sidecar.


rule prepare_dataset:
    input:
        custom_dataset_inputs,
    output:
        npz="results/data/{dataset}.npz",
        meta="results/data/{dataset}.json",
    log:
        "logs/data/{dataset}.log",
    benchmark:
        benchmark_file("prepare_dataset", "{dataset}")
    group:
        "prepare"
    conda:
        ENV
    resources:
        runtime=runtime_min(60),
        mem_mb=8000,
        group_slot=1,
    params:
        dataset=dataset_params,
    script:
        "../scripts/prepare_dataset.py"
