"""Prefect flows: each only orchestrates the steps in `pipeline.tasks`."""
