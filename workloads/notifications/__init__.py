"""Alert notifications as plain Python: the message each channel kind sends (messages) and how it
is sent and signed (transport). No models and no settings: services pass in what they need."""
