"""Engine: reconcile the desired apps with what the backend runs (DESIGN §8)."""
