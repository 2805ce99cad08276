"""Training: the vectorised grid trainer, the plain reference trainer, shards and convergence."""
