"""Analyses of trained weights: distances, sensitivity, intrinsic epsilon, distribution tests, embeddings."""
