"""The hub's actors: registers, pickers, devices and the outbox senders, each owning its own state."""
