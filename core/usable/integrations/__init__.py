"""Thin adapters to other training frameworks (optional extras); see docs/your-own-model.md."""
