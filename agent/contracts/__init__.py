"""The wire contract shared by edge and cloud: names, topics, payloads, resources and shadow rules.

Pure code: it imports only the standard library and pydantic (import-linter checks this), so the
cloud can depend on it without pulling in anything of the agent.
"""
