"""Operator side of Tollgate: the ``tollgate`` CLI and the local stack."""
