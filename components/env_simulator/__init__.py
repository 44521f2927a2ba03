"""env-simulator: validates env_config and publishes the furnace environment as env.json."""
