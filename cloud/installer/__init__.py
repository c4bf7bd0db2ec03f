"""The online installer: install tokens, the install script and manifest, the agent wheel."""
