"""The conditional VAE and its stored form: the five parts, one step, the one rollout, checkpoints.

Knows nothing of training: losses, schedules and the epoch loop live elsewhere (README, "Development").
"""
