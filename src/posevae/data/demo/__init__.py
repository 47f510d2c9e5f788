"""The demo dataset: motion-capture clips played by pybullet's humanoid, in the lab layout."""
