-- Verify raxx_queue:processed_stripe_events on pg
SELECT event_id, type, outcome, stripe_customer_id, event_created_at, api_version, livemode,
       source, request_id, payload, received_at
  FROM processed_stripe_events
 WHERE false;
