"""Shared state in Redis: feature windows (Lua scripts in `lua/`), stores for pending
vectors and cooldowns, and the plumbing that batches their round trips."""
