"""What the HTTP API serves from: the `Runtime` interface (`protocol`), implemented by the
embedded runtime (one process) and the cluster runtime (an API replica over Kafka and Redis),
with what they share (the scoreboard, model statuses, loops), the simulated feed, the alert log
and the dashboard's figures."""
