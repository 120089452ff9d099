"""The HTTP API over a model folder and an index folder."""
