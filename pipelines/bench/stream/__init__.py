"""The distributed-mode bench (`fraudstream bench stream`): Kafka in, workers over Redis,
scores out; `run` drives it, `rates` measures the in-process paths it is set against,
`traffic` produces and watches the topics, `result` holds its figures."""
