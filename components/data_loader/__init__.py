"""data-loader: generates a deterministic synthetic furnace transition dataset."""
