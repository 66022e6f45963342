"""Lab 06: Kubernetes on a multi-node kind cluster (being written)."""
