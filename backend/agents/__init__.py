"""Agents declared in YAML: validated specs, tools, and the runner inside the coordinator."""
