"""Small stdlib helpers that the agent and the cloud both need: backoff, crash-safe files, tasks.

They live under `agent.contracts` because that is the one agent package the cloud may import
(DESIGN §2); like the rest of it they use the standard library only.
"""
