"""The scan service: FastAPI control plane (HTTP) and ZeroMQ data plane, sessions that
survive restarts. Protocol: docs/protocol.md. Entry point: ``scan-server serve``."""
