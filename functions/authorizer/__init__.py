"""The API Gateway REQUEST authorizer: every model call passes through it."""
