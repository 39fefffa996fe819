"""Stages: each takes a Model (and data) and returns a new value; none changes its input."""
