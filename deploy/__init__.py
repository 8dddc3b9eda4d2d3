"""`make deploy`: the first deploy (and every later one) in one command, from a `.env` holding the team's keys.

    python -m deploy [--env-file .env] [-c key=value ...]

The steps, each skipped when there is nothing to do (so running it again is safe):

1. read and validate `.env` (OPENAI_API_KEY, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN) and ask Twilio whether the
   account SID and auth token are right, before anything is deployed;
2. when the stack does not exist yet: `cdk deploy -c wireNumbers=false` (the secrets hold placeholders, so the Twilio
   number custom resource could not reach Twilio yet);
3. put each key whose stored value differs into its Secrets Manager secret (by the ARNs in the stack outputs), straight
   through the Secrets Manager API: never through CloudFormation, never printed;
4. when a secret changed, force a new relay deployment (ECS injects secrets only when a task starts);
5. `cdk deploy` with the numbers wired: every profile's numbers point at the stack;
6. wait until the relay service runs a task of its latest deployment, then print the numbers to call.
"""
