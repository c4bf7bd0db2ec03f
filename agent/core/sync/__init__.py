"""Sync: the agent's half of the edge ⇄ cloud protocol (DESIGN §4), over one MQTT link."""
