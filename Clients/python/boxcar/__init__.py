"""Boxcar's Python client. The generated gRPC stubs live in ``boxcar._proto``."""
