"""One blueprint per endpoint; each view authenticates, loads its body and calls a service."""
