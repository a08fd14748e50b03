"""``logto-m2m provision``: a Logto tenant set up from one tenant file, through the Management API.

``cli`` (command line and settings), ``reconcile`` (what to create, update or leave alone),
``management`` (the Management API client), ``envfile`` (credentials into a ``.env`` file).
"""
