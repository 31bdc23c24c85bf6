"""What the HTTP API serves from: the embedded runtime (one process) and the cluster
runtime (an API replica over Kafka and Redis), with the simulated feed, the alert log and the
dashboard's figures."""
