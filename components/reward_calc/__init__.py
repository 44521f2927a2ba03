"""reward-calc: evaluates the upstream policy with the App's reward_params."""
