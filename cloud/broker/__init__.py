"""The MQTT broker side of the platform: Mosquitto configuration and ACL rendering (DESIGN §10)."""
