"""Dropbox hooks."""
