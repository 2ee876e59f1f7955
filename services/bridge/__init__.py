"""The webhook bridge: signed webhooks in, platform events out as signed webhooks."""
