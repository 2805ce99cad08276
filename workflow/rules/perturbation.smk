# Output perturbation and the repeated-query attack (docs/methods.md, section 9), per logreg experiment.


rule bolt_on_utility:
    input:
        unpack(perturbation_inputs),
    output:
        table="results/perturbation/{experiment}/bolt_on.parquet",
        runs="results/perturbation/{experiment}/bolt_on_runs.parquet",
    log:
        "logs/perturbation/{experiment}/bolt_on_utility.log",
    benchmark:
        benchmark_file("bolt_on_utility", "{experiment}")
    group:
        "analysis"
    conda:
        ENV
    resources:
        runtime=runtime_min(30),
        group_slot=1,
        mem_mb=analysis_mem_mb,
    params:
        settings=perturbation_slice("epsilons", "calibration", "noise_draws", "seed"),
    script:
        "../scripts/bolt_on_utility.py"


rule query_attack:
    input:
        unpack(perturbation_inputs),
    output:
        table="results/perturbation/{experiment}/query_attack.parquet",
    log:
        "logs/perturbation/{experiment}/query_attack.log",
    benchmark:
        benchmark_file("query_attack", "{experiment}")
    group:
        "analysis"
    conda:
        ENV
    resources:
        runtime=runtime_min(30),
        group_slot=1,
        mem_mb=analysis_mem_mb,
    params:
        settings=perturbation_slice("k_values", "query_noise", "nearby_radius", "attack_examples", "dp_sgd", "seed"),
    script:
        "../scripts/query_attack.py"
