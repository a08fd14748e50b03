"""Pieces shared by the shopping API, the stats worker and the local issuer."""
