"""The revoke function for responders (invoked directly: ``lambda:InvokeFunction`` is all a
responder needs). The logic is in functions/respond/revocation.py."""
