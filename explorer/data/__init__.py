"""Data: the Dataset type, splits, tasks and label encoding, preprocessing."""
