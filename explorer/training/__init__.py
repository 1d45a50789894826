"""Training: the one training loop and its hooks, progress events, the batched trainer and its optimiser, devices, metrics."""
