"""CDK infrastructure of Tollgate: one stack composing one construct per concern."""
