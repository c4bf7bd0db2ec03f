"""Pieces of the fleet simulator benchmark (`bench/fleet.py`): MQTT nodes, workers, services."""
