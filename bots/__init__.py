"""The Slack bot (/track): a front-end over trackops.core.engine."""
