"""Training: the epoch loop as the lab's pseudo-code, one clip's step, validation, logs, distributed runs."""
