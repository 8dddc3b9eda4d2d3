"""Local stand-ins for the AWS-managed pieces, so a whole phone call runs on one machine with no account."""
