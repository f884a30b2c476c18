"""Modality sabotage (docs/science.md section 3): agents, fusion, reports, plots."""
