"""The batch retrain job: the job itself, its scheduling and bookkeeping, the warm restart,
and the offline store of labelled vectors it trains on."""
