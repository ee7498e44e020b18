"""The HTTP API: a thin FastAPI layer that validates, authorizes, calls services and audits."""
