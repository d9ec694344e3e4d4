"""Online orders and handheld picking (issue 14): intake and menu for e-commerce channels, the order queue,
the picker's commands, callbacks and notices, pickup at the register; hub/orders/feature.py starts it."""
