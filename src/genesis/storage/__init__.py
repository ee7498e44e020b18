"""Storage: small Protocols the services depend on, and their SQL/Redis implementations."""
