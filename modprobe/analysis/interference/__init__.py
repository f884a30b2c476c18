"""Modality interference (docs/science.md section 4): flip rates, attention shift, plots."""
