"""HTTP routes, one blueprint per feature."""
