"""Modality following (docs/science.md section 1): rates, the law, oscillation, reports."""
