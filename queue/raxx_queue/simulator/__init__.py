"""A local Stripe: the API Queue calls, in the pinned version, from Stripe's fixtures.

The test suite's Stripe double and `raxx-queue dev`'s simulator are this package. It is
a development tool: the serving path never imports it, the production image does not
contain it, and it refuses to run with QUEUE_ENV=production or a live key.
"""
