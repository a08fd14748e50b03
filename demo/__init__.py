"""``make demo``: the quick start's machine-to-machine flow, run locally and narrated step by step.

Starts the local issuer and the shopping API (gunicorn, SQLite under ``.demo/``), seeds a catalog
and yesterday's orders through the API with the admin app's token, runs ``stats-worker once``
with the Management API sync on, prints what goes over the wire at each step, then stops
everything it started.
"""
