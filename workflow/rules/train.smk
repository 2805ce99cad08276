# Training stage: the vectorised grid trainer, one job per shard, then convergence per experiment.
# Device, memory budget, threads and the checkpoint interval are resources, not params: they never
# change results.


rule fixed_init:
    input:
        meta=lambda wc: dataset_files(experiment(wc.experiment)["dataset"])["meta"],
        npz=lambda wc: dataset_files(experiment(wc.experiment)["dataset"])["npz"],
    output:
        "results/train/{experiment}/fixed_init.npy",
    log:
        "logs/train/{experiment}/fixed_init.log",
    benchmark:
        benchmark_file("fixed_init", "{experiment}")
    group:
        "prepare"
    conda:
        ENV
    resources:
        runtime=runtime_min(10),
        group_slot=1,
        mem_mb=1000,
    params:
        architecture=lambda wc: architecture_slice(experiment(wc.experiment)),
        seed=lambda wc: experiment(wc.experiment)["fixed_init_seed"],
    script:
        "../scripts/fixed_init.py"


rule train_shard:
    input:
        unpack(train_inputs),
    output:
        "results/train/{experiment}/shards/{shard}.parquet",
    log:
        "logs/train/{experiment}/{shard}.log",
    benchmark:
        benchmark_file("train_shard", "{experiment}/{shard}")
    conda:
        ENV
    threads: config["training"]["threads"]
    resources:
        device=config["training"]["device"],
        budget_mb=config["training"]["memory_budget_mb"],
        mem_mb=training_mem_mb(shard_held),
        gpu=training_gpus(),
        runtime=runtime_min(240),
        conv_path=config["training"]["conv_path"],
        checkpoint_minutes=str(config["training"]["checkpoint_minutes"]),
    params:
        run=train_params,
    script:
        "../scripts/train_shard.py"


rule convergence:
    input:
        lambda wc: shard_files(wc.experiment),
    output:
        runs="results/train/{experiment}/runs.parquet",
        summary="results/train/{experiment}/convergence.parquet",
    log:
        "logs/train/{experiment}/convergence.log",
    benchmark:
        benchmark_file("convergence", "{experiment}")
    group:
        "analysis"
    conda:
        ENV
    resources:
        runtime=runtime_min(20),
        group_slot=1,
        mem_mb=analysis_mem_mb,
    params:
        convergence=lambda wc: {k: experiment(wc.experiment)[k] for k in ("patience", "T", "convergence_rule")},
    script:
        "../scripts/convergence.py"
