"""Dagster definitions, loaded with ``dg.load_from_defs_folder``: thin wrappers around the science."""
