"""Evaluation libraries: multi-view averaging, kNN, feature export, report
tables."""
