"""Reference component programs: what a Component container image runs (see README.md)."""
