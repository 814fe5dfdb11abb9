#!/usr/bin/env python3
"""CDK entry point (``npx cdk synth``): one Tollgate stack, checked by cdk-nag AwsSolutions.

Context (cdk.json or ``-c``): env_name=dev|prod, stack_name, stage_name, log_level,
bedrock_models, waf_rate_limit; see infra/settings.py.
"""

from infra.app import build

app, _ = build()
app.synth()
