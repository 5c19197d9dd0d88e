-- Verify raxx_queue:billing_event_retention on pg
SELECT payload_stripped_at FROM processed_stripe_events WHERE false;
SELECT 'billing_strip_old_payloads(timestamptz, integer)'::regprocedure;
SELECT 1 / (billing_strip_payload('{"id": "evt_1", "data": {"object": {"id": "cus_1",
    "object": "customer", "email": "a@b.c"}}}')
    = '{"id": "evt_1", "data": {"object": {"id": "cus_1", "object": "customer",
        "customer": "cus_1"}}}')::int;
