# Membership inference (docs/methods.md, section 6): Yeom's loss-threshold attack with the training
# seed known or hidden on the trained grid (no retraining), the calibrated LiRA attack on its own
# shadow runs, and epsilon lower bounds. Device, memory budget and threads are resources.


rule mia_losses:
    input:
        unpack(mia_inputs),
    output:
        "results/mia/{experiment}/losses/{shard}.parquet",
    log:
        "logs/mia/{experiment}/losses_{shard}.log",
    benchmark:
        benchmark_file("mia_losses", "{experiment}/{shard}")
    conda:
        ENV
    threads: config["training"]["threads"]
    resources:
        runtime=runtime_min(60),
        gpu=training_gpus(),
        device=config["training"]["device"],
        budget_mb=config["training"]["memory_budget_mb"],
        mem_mb=training_mem_mb(weights_held),
    params:
        settings=mia_loss_params,
    script:
        "../scripts/mia_losses.py"


rule mia_attack:
    input:
        mia_loss_files,
    output:
        attacks="results/mia/{experiment}/attacks.parquet",
        table6="results/mia/{experiment}/table6.parquet",
        bounds="results/mia/{experiment}/epsilon_bounds.parquet",
    log:
        "logs/mia/{experiment}/attack.log",
    benchmark:
        benchmark_file("mia_attack", "{experiment}")
    group:
        "analysis"
    conda:
        ENV
    resources:
        runtime=runtime_min(30),
        group_slot=1,
        mem_mb=analysis_mem_mb,
    params:
        bounds=mia_bound_params,
    script:
        "../scripts/mia_attack.py"


rule lira_shadows:
    input:
        npz=lambda wc: dataset_files(experiment(wc.experiment)["dataset"])["npz"],
        meta=lambda wc: dataset_files(experiment(wc.experiment)["dataset"])["meta"],
    output:
        "results/lira/{experiment}/shadows/seed{seed}.parquet",
    log:
        "logs/lira/{experiment}/shadows_seed{seed}.log",
    benchmark:
        benchmark_file("lira_shadows", "{experiment}/seed{seed}")
    wildcard_constraints:
        seed=r"\d+",
    conda:
        ENV
    threads: config["training"]["threads"]
    resources:
        runtime=runtime_min(240),
        gpu=training_gpus(),
        device=config["training"]["device"],
        checkpoint_minutes=str(config["training"]["checkpoint_minutes"]),
        budget_mb=config["training"]["memory_budget_mb"],
        mem_mb=training_mem_mb(nothing_held),
    params:
        run=lira_train_params,
    script:
        "../scripts/lira_shadows.py"


rule lira_attack:
    input:
        lambda wc: [f"results/lira/{wc.experiment}/shadows/seed{s}.parquet" for s in lira_seeds()],
    output:
        scores="results/lira/{experiment}/scores.parquet",
        roc="results/lira/{experiment}/roc.parquet",
        summary="results/lira/{experiment}/summary.parquet",
        bounds="results/lira/{experiment}/epsilon_bounds.parquet",
    log:
        "logs/lira/{experiment}/attack.log",
    benchmark:
        benchmark_file("lira_attack", "{experiment}")
    conda:
        ENV
    resources:
        runtime=runtime_min(30),
        mem_mb=4000,
    params:
        settings=lira_attack_params,
    script:
        "../scripts/lira_attack.py"
