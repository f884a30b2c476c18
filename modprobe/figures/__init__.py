"""Figures of the documentation, importable from an installed package.

Each module draws one analysis's figures from its finished run folders, with the same
conventions as :mod:`modprobe.analysis.following.plots` (``ax=``/``fig=`` to compose, a fresh Agg
figure otherwise, no pyplot), and has a ``main(argv)`` that the scripts in the
repository's ``figures/`` folder call:

- :mod:`modprobe.figures.finetune`: the fine-tuning demonstration (``docs/finetune.md``);
- :mod:`modprobe.figures.interference`: radar, flip rates and attention shift of
  interference runs;
- :mod:`modprobe.figures.sabotage`: the figures of a sabotage report folder;
- :mod:`modprobe.figures.analysis_demo`: the analysis figures of ``docs/analyses.md`` on
  planted data.

This layer sits above the analyses, the study runners and fine-tuning, and below the
command line; nothing in the library imports it.
"""
