"""Alert notifications as plain Python: the message each channel kind sends (messages), how it is
sent and signed (transport), and which runbook an alert links to (runbooks)."""
