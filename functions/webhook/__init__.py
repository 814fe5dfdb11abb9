"""The leak webhook: GitHub secret scanning reports leaked Tollgate keys; they are revoked."""
