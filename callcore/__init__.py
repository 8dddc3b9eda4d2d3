"""The shared core of the phone voice agent: one definition of each record, the store, and Twilio security helpers.

Imported by the Lambdas (`lambdas/`) and the relay (`relay_container/relay`); nothing here imports either of them.
"""
