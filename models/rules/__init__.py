"""Declarative rules beside the model: a small grammar, conditions over a transaction's fields
and feature vector, and rule sets that decide alert, review or allow."""
