"""`concert report DIR`: a recorded set (`--record`) read back into a setlist JSON and one self-contained HTML page."""
