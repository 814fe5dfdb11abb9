"""Money: prices per model and exact costs in integer micro-dollars (``money``)."""
