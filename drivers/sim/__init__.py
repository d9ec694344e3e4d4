"""Simulated devices for the demo and the tests: scales and a scanner on real pseudo-terminals, a receipt
printer on loopback TCP, a payment terminal on loopback TCP. Each speaks the real device's bytes."""
