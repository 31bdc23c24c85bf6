"""The Kafka side of distributed mode: the scoring worker's loop and its lanes, record
decoding, dead letters, the label learner, the Kafka clients and the topics."""
