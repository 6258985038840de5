"""Datasets of videos and records: synthetic videos, labelled subsets,
inspection of converted records."""
