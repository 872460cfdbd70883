"""``cpvae``: the command line (demo, SQL, fetch, predict, report, export). No TensorFlow at start-up."""

from cpvae_assets.cli.main import main

__all__ = ["main"]
