"""What the latent features mean: traversal, CellProfiler feature groups, latent correlation."""
