"""The managed API: OpenAI-compatible model access, tools and fine-tune records.

Layers (docs/design.md, "Conventions"): ``handler`` (Powertools resolver: parse, call one piece
of logic, shape)
-> logic (``chat``, ``catalog``, ``tools``, ``jobs``, ``budget``, ``usage``) -> data access
(``store``: botocore DynamoDB calls; ``providers``: the model back ends).

Decisions (the short version; each module says more):

* **429 verdicts first.** The authorizer admits over-limit requests with a refusal
  ``verdict`` in its context (API Gateway lets it answer only 401/403). The resolver's first
  middleware answers them 429 before anything else: no model call, no usage event, no
  DynamoDB call.
* **Model routing** (``providers.route``): ``tollgate-echo`` is built in and always
  allowed; ``bedrock:<model id>`` (or a bare Bedrock id such as ``anthropic.claude-...``)
  goes to Bedrock's Converse API; ``upstream:<model>`` to the OpenAI-compatible upstream
  named by the secret ``TOLLGATE_UPSTREAM_SECRET_ARN``. A live key may use tollgate-echo and
  the models its plan lists; a test key only tollgate-echo, checked before any routing.
* **Exact budgets** (``budget``): one conditional ``UpdateItem`` on the tenant item reserves
  the worst case (prompt upper bound + max_tokens) against the tenant's monthly tokens and
  the delegated key's budget together; the limits are compared with values computed here
  (conditions cannot add). After the call one ``UpdateItem`` settles to the actual usage.
* **One usage event per admitted request** (``usage``), put with
  ``attribute_not_exists(request_id)``: the event is the commit point. A redelivery of a
  request id finds the event written and releases everything it reserved, so counters and
  events count each request once. Requests refused as malformed (400) write none.
* **Round trips** per chat completion: reserve + event + settle = 3 (settle is skipped when
  the reservation was exact; the plan is cached per container; plans are immutable).
"""
