"""Shared by every function: key format, route table, data model, configuration, errors."""
