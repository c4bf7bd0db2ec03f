"""The cloud's object store: files uploaded for configurations' object items (DESIGN §7)."""
