"""Faust wiring and the process edge (CLI, Kafka clients, HTTP) around the pure core in streams/."""
