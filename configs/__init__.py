"""Shipped configuration data (architecture presets, energy tables, recipes, sweeps) as package data."""
