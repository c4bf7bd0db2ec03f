"""Baetyl-Py cloud management suite: REST facade, store, shadow service, MQTT bridge and PKI."""
