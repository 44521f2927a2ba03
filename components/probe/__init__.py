"""probe: a trivial component for failure, timeout, cancel and throughput tests."""
