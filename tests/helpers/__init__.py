"""Helpers the tests share that are not fixtures (fixtures live in tests/conftest.py): `from helpers.x import y`."""
