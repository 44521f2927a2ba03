"""The global component library (CL-01…CL-06)."""
