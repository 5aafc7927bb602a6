"""Demo tasks and their data, one module per chapter task (chapter code stays out of the general modules)."""
