"""Lab 07: deployment patterns on Kubernetes (being written)."""
