"""DP-SGD, SAM and regularisers against membership inference (per-epoch privacy-utility, sweeps, ledger)."""
