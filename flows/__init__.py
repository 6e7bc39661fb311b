"""Prefect flows: orchestration of the skinml stages (no ML logic here)."""
