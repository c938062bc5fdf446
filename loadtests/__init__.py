"""Locust load tests of the stack (`make loadtest`): they speak HTTP and WebSocket only and import
nothing of Relais (an import contract says so). Locust runs `locustfile.py` from this folder."""
