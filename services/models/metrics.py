"""Prometheus metrics of the models service (exposed at /metrics with the kit's)."""
from __future__ import annotations

from prometheus_client import Gauge

from services.kit.metrics import Counter, Histogram

STORE_RETRIES = Counter("avatar_model_store_retries_total", "Failed attempts to store a model that will be retried")
STORED = Counter("avatar_models_stored_total", "Models stored and verified")
STORED_BYTES = Counter("avatar_model_stored_bytes_total", "Bytes copied into the models bucket and verified")
STORE_SECONDS = Histogram("avatar_model_store_seconds", "Time to copy and verify one model (one attempt)",
                          buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600))
PENDING = Gauge("avatar_models_pending", "Models recorded but not yet stored")
DOWNLOADS = Counter("avatar_model_downloads_total", "Model downloads started", ["kind"])
DOWNLOADED_BYTES = Counter("avatar_model_downloaded_bytes_total", "Bytes sent to model downloads")
ALIAS_MOVES = Counter("avatar_model_alias_moves_total", "Alias moves by action and outcome", ["action", "outcome"])
