# The Henze-Zirkler power simulation (the intrinsic-privacy study's Appendix C.2, Figure 7): one
# small job; the report's weight-distribution section draws it and its HZ verdicts use the power.


rule hz_power:
    output:
        power="results/analysis/hz_power.parquet",
        replicates="results/analysis/hz_power_replicates.parquet",
    log:
        "logs/analysis/hz_power.log",
    benchmark:
        benchmark_file("hz_power", "all")
    conda:
        ENV
    resources:
        runtime=runtime_min(60),
        mem_mb=2000,
    params:
        settings=lambda wildcards: dict(config["hz_power"]),
    script:
        "../scripts/hz_power.py"
