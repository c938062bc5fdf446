"""The realtime gateway: users' WebSocket connections, and the events that concern them."""
