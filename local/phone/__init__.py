"""A softphone in the browser: talk to the agent through the local stack, over Twilio's media path (`make phone`)."""
