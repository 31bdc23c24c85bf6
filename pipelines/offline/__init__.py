"""Labelled data sets on disk and the offline evaluation replay and its report."""
