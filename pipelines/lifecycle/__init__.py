"""Model versions: the signed registry and its index, the champion/challenger lifecycle,
and how models and commands travel between processes (Redis channel, remote retrain)."""
