"""posevae: pose-conditioned video prediction with a conditional VAE."""

__version__ = "0.1.0"
