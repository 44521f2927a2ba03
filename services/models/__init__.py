"""Trained model store: versions, downloads, aliases (MD-01…MD-06)."""
