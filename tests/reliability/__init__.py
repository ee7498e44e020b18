"""Reliability and security suite: fuzzing, attacks, fault injection, soak (see docs/RELIABILITY.md)."""
