"""concert: crowd-steered, endless AI music."""
