"""The sale at the register: check-in, cart, pay, void, the commit and the register view, one module each."""
