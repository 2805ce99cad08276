# The privacy ledger (docs/methods.md, section 8): the epsilon spent on each dataset by every DP model the
# pipeline trains, the DP stage's runs and the output-perturbation query experiment's DP-SGD models.


rule privacy_ledger:
    input:
        unpack(ledger_inputs),
    output:
        ledger="results/dp/ledger.parquet",
    log:
        "logs/dp/ledger.log",
    benchmark:
        benchmark_file("privacy_ledger", "ledger")
    conda:
        ENV
    resources:
        runtime=runtime_min(30),
        mem_mb=4000,
    params:
        ledger=ledger_params,
    script:
        "../scripts/privacy_ledger.py"
