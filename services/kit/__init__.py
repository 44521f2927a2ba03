"""The shared runtime every AVATAR OnE service is built from (written once, used six times)."""
