"""Threshold approval, the minimum run (loop) test, approve/reject (AP-01…AP-05)."""
