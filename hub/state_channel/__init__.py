"""The channel to the state's track-and-trace system (issue 5): the state-sync actor draining the outbox,
the dead-letter list, pulls (packages, incoming manifests), receiving deliveries and reconciliation.

hub/wiring.py wires it through ``feature.py`` (``ChannelOptions``; ``build`` when the hub is built, ``start``
once the registers run):

- with ``[state_system] kind = "none"`` (and not in the demo) the outbox simply accumulates;
- in the demo (``DemoOptions.sandbox`` true) the bundled sandbox runs in-process on a free loopback port
  with ``--seed demo`` data under ``<data_dir>/sandbox``; the hub's state settings point at it, its URL is in
  ``hub.services.demo.sandbox_url``, and the demo store's packages are planted in the sandbox facility once.

Licences: the outbox is keyed by the store's licence (``[store] licence``); one actor per such licence sends
its entries to the state facility ``[state_system] license_number`` (the store licence when empty). In the
demo that facility is the sandbox's, in the store's state and zone: see ``hub.state_channel.demo``. A store
whose facility is in another state or time zone does not start (``hub.config.check_facility``).
"""
