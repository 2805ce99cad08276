"""Output perturbation of trained models and the repeated-query attack on a noisy prediction API (section 9)."""
