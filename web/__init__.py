"""The concert web pages, served as package data."""
