"""Durable state in the state dir: the SQLite session store (and, later, channel queues)."""
