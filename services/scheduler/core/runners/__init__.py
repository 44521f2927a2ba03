"""Runners: start, watch, stop and tail one component run (local subprocess or Kubernetes pod)."""
