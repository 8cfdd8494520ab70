"""Helpers shared by the tests: real registries, configs and network faults."""
