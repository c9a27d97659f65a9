"""concert."""
