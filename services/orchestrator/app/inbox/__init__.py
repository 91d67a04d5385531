"""The durable inbox of pushed events (webhooks): stored before they are acknowledged, processed
later by a worker. Provider-agnostic: it knows owners (runners), objects and states, no provider."""
