"""Benchmarks (`fraudstream bench ...`) and the throwaway local servers they start."""
