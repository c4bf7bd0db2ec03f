"""Use cases of the cloud (create a node, update an app, ...): validation, matching, propagation.

Handlers call these; these call `cloud.store`. Nothing here knows HTTP or the ORM.
"""
