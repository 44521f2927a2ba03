"""rl-agent: trains a tabular Q-learning policy on the furnace environment."""
