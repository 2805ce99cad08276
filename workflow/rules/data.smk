# Data stage: raw files -> preprocessed train/validation/test arrays with a JSON sidecar.


rule prepare_dataset:
    input:
        custom_dataset_inputs,
    output:
        npz="results/data/{dataset}.npz",
        meta="results/data/{dataset}.json",
    log:
        "logs/data/{dataset}.log",
    conda:
        ENV
    params:
        dataset=dataset_params,
    script:
        "../scripts/prepare_dataset.py"
