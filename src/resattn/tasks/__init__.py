"""End-to-end tasks: a data source, a model and the engine wired together (the CLI calls these)."""
