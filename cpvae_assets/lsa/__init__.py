"""Latent space arithmetic: MOA groups, group means, A|B predictions, distances, shuffled null."""
