"""Test peers of SPEC §9: a Stripe API double, signed Stripe events, a Raptor mirror receiver."""
