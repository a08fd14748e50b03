"""The machine-to-machine app: a scheduled stats worker that calls the shopping API with Logto tokens."""
