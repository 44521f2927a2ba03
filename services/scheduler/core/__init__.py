"""Scheduler core: pure placement/ordering rules plus the Redis and runner adapters.

Nothing here is constructed at import time; the service's composition root builds the
adapters (see README.md in this folder).
"""
