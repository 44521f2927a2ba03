"""param-optimizer: recommends furnace design setpoints from the evaluated policy and a setpoint search."""
