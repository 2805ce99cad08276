# Intrinsic-privacy analyses (ALGORITHMS.md sections 4 and 5): one rule each, per experiment.


def analysed_experiments():
    """Experiments the analyses run on."""
    chosen = config["analysis"]["experiments"]
    unknown = sorted(set(chosen or []) - set(config["experiments"]))
    if unknown:
        raise WorkflowError(f"analysis.experiments names unknown experiments: {', '.join(unknown)}")
    return list(config["experiments"]) if chosen is None else chosen


def analysis_inputs(wildcards):
    """Shard histories, the experiment's convergence point and its dataset's sidecar."""
    return {
        "shards": shard_files(wildcards.experiment),
        "convergence": f"results/train/{wildcards.experiment}/convergence.parquet",
        "meta": dataset_files(experiment(wildcards.experiment)["dataset"])["meta"],
    }


def bound_params(wildcards):
    """What the bolt-on bound needs (logistic regression only; null otherwise)."""
    exp = experiment(wildcards.experiment)
    if exp["model"] != "logreg":
        return None
    return {"batch_size": exp["batch_size"], "lr": exp["lr"]}


def analysis_slice(*keys):
    """A params function returning only `keys` of the analysis config."""
    return lambda wildcards: {k: config["analysis"][k] for k in keys}


def analysis_targets():
    """Every analysis output."""
    names = ["distances_over_t", "distances_at_T", "epsilon", "distribution_tests", "umap"]
    return [f"results/analysis/{e}/{n}.parquet" for e in analysed_experiments() for n in names]


rule distances:
    input:
        unpack(analysis_inputs),
    output:
        over_t="results/analysis/{experiment}/distances_over_t.parquet",
        at_T="results/analysis/{experiment}/distances_at_T.parquet",
    params:
        pairs=analysis_slice("n_pairs", "pair_seed"),
        bound=bound_params,
    log:
        "logs/analysis/{experiment}/distances.log",
    conda:
        ENV
    script:
        "../scripts/distances.py"


rule intrinsic_epsilon:
    input:
        unpack(analysis_inputs),
        at_T="results/analysis/{experiment}/distances_at_T.parquet",
    output:
        epsilon="results/analysis/{experiment}/epsilon.parquet",
        per_weight="results/analysis/{experiment}/sigma_per_weight.parquet",
        per_dataset="results/analysis/{experiment}/sigma_per_dataset.parquet",
        stability="results/analysis/{experiment}/stability.parquet",
    params:
        bound=bound_params,
        settings=analysis_slice(
            "bootstrap", "bootstrap_seed", "stability_seeds", "stability_pairs", "stability_repeats", "pair_seed"
        ),
    log:
        "logs/analysis/{experiment}/intrinsic_epsilon.log",
    conda:
        ENV
    script:
        "../scripts/intrinsic_epsilon.py"


rule distribution_tests:
    input:
        unpack(analysis_inputs),
    output:
        summary="results/analysis/{experiment}/distribution_tests.parquet",
        per_weight="results/analysis/{experiment}/per_weight_tests.parquet",
    params:
        settings=analysis_slice("distribution_datasets", "ad_simulations", "seed"),
    log:
        "logs/analysis/{experiment}/distribution_tests.log",
    conda:
        ENV
    script:
        "../scripts/distribution_tests.py"


rule weight_embedding:
    input:
        unpack(analysis_inputs),
    output:
        umap="results/analysis/{experiment}/umap.parquet",
        kmeans="results/analysis/{experiment}/kmeans_spans.parquet",
    params:
        settings=analysis_slice("seed"),
    log:
        "logs/analysis/{experiment}/weight_embedding.log",
    conda:
        ENV
    script:
        "../scripts/weight_embedding.py"
