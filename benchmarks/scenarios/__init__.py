"""Scenarios: each starts its own simulator and runs its contenders side by side."""
