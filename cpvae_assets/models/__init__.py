"""Models: the VAE family (vanilla, beta, MMD) on TensorFlow/Keras 3, and PCA as the linear baseline.

Importing this package does not import TensorFlow; ``cpvae_assets.models.vae`` does.
"""
