"""The reliability drill: the pipeline under faults, compared day by day with a clean reference."""
