"""The cloud's persistent store: Tortoise ORM models and the queries over them.

This package is the only place that imports tortoise (STYLE 10); everything above it works with
plain values and the contract models.
"""
