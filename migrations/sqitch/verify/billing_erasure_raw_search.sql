-- Verify raxx_queue:billing_erasure_raw_search on pg
SELECT 'billing_event_mentions(jsonb, text, text)'::regprocedure;
