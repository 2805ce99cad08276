# Intrinsic-privacy analyses (docs/methods.md, sections 4 and 5): one rule each, per experiment.


rule distances:
    input:
        unpack(analysis_inputs),
    output:
        over_t="results/analysis/{experiment}/distances_over_t.parquet",
        at_T="results/analysis/{experiment}/distances_at_T.parquet",
    log:
        "logs/analysis/{experiment}/distances.log",
    benchmark:
        benchmark_file("distances", "{experiment}")
    group:
        "analysis"
    conda:
        ENV
    resources:
        mem_mb=analysis_mem_mb,
        runtime=runtime_min(60),
        group_slot=1,
    params:
        pairs=analysis_slice("n_pairs", "pair_seed"),
        bound=bound_params,
    script:
        "../scripts/distances.py"


rule intrinsic_epsilon:
    input:
        unpack(analysis_inputs),
    output:
        epsilon="results/analysis/{experiment}/epsilon.parquet",
        per_weight="results/analysis/{experiment}/sigma_per_weight.parquet",
        per_dataset="results/analysis/{experiment}/sigma_per_dataset.parquet",
        stability="results/analysis/{experiment}/stability.parquet",
    log:
        "logs/analysis/{experiment}/intrinsic_epsilon.log",
    benchmark:
        benchmark_file("intrinsic_epsilon", "{experiment}")
    group:
        "analysis"
    conda:
        ENV
    resources:
        mem_mb=analysis_mem_mb,
        runtime=runtime_min(60),
        group_slot=1,
    params:
        bound=bound_params,
        settings=analysis_slice(
            "bootstrap", "bootstrap_seed", "stability_seeds", "stability_pairs", "stability_repeats", "pair_seed"
        ),
    script:
        "../scripts/intrinsic_epsilon.py"


rule distribution_tests:
    input:
        unpack(analysis_inputs),
    output:
        summary="results/analysis/{experiment}/distribution_tests.parquet",
        per_weight="results/analysis/{experiment}/per_weight_tests.parquet",
        examples="results/analysis/{experiment}/nonnormal_weights.parquet",
    log:
        "logs/analysis/{experiment}/distribution_tests.log",
    benchmark:
        benchmark_file("distribution_tests", "{experiment}")
    group:
        "analysis"
    conda:
        ENV
    resources:
        mem_mb=analysis_mem_mb,
        runtime=runtime_min(60),
        group_slot=1,
    params:
        settings=analysis_slice("distribution_datasets", "ad_simulations", "seed"),
    script:
        "../scripts/distribution_tests.py"


rule weight_embedding:
    input:
        unpack(analysis_inputs),
    output:
        umap="results/analysis/{experiment}/umap.parquet",
        kmeans="results/analysis/{experiment}/kmeans_spans.parquet",
    log:
        "logs/analysis/{experiment}/weight_embedding.log",
    benchmark:
        benchmark_file("weight_embedding", "{experiment}")
    group:
        "analysis"
    conda:
        ENV
    resources:
        mem_mb=analysis_mem_mb,
        runtime=runtime_min(60),
        group_slot=1,
    params:
        settings=analysis_slice("seed"),
    script:
        "../scripts/weight_embedding.py"
