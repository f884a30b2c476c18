"""MMA-Bench analyses: accuracy per condition, attention contrast per layer."""
