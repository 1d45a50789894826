"""Relatedness: sweeps, transfer matrices, gains and verdicts, one-run estimates, grouping, method comparison, reports."""
