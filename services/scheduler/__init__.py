"""Priority queue, GPU allocation, component runs, logs and resources (QU, SC, RS)."""
