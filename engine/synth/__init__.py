"""Procedural style synth: labelled music from a style description."""
