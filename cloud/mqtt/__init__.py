"""The cloud's MQTT side: one link to the broker, request handlers, delta pushes (DESIGN §4)."""
