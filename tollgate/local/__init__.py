"""The local stack: moto as the AWS endpoint, a local API Gateway, stream pollers."""
