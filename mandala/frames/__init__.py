"""ComputationFrame: stored calls organized as a graph of variables and ops."""
