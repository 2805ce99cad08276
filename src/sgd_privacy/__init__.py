"""sgd_privacy: measure how private stochastic gradient descent is."""

__version__ = "0.1.0"
