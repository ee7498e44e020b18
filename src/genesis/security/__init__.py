"""Credentials: password hashing, JWT access/refresh tokens, roles and scopes."""
