"""AVATAR OnE contracts: the shared language of the platform (pure pydantic, no I/O)."""
