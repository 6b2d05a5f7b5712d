"""Exact integer arithmetic shared by encoder and decoder: constant tables and integer ops."""
