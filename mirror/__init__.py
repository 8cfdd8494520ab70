"""Kconfig-driven Docker registry mirror."""
