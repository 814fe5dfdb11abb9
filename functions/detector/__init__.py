"""The spike detector: pure detection logic (logic.py), the usage stream handler and the
refusals handler (handler.py), their data access (store.py) and actions (actions.py), and
the backtest over a recorded trace (backtest.py). docs/detection.md explains the signals."""
