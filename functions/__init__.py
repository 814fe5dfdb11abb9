"""Everything that runs in AWS Lambda. Shipped as one code asset."""
