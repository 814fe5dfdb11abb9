"""The usage pipeline: the stream aggregator and what reads its rollups.

Layers (docs/design.md, "Conventions"): ``handler`` (Powertools batch processing, thin) ->
``aggregator`` (the
exactly-once batch application; its docstring explains the scheme) and ``logic`` (pure:
which rollup items an event adds to) -> ``store`` (the conditional update, botocore).
``reports`` reads rollups and raw events (usage rows, reconciliation); ``stream`` holds
the event source mapping's numbers that CDK and the local pollers share.
"""
