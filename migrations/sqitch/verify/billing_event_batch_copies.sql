-- Verify raxx_queue:billing_event_batch_copies on pg
SELECT 1 / (position('one raw copy per event' IN prosrc) > 0)::integer
  FROM pg_proc WHERE oid = 'billing_apply_stripe_events(jsonb, text, text[])'::regprocedure;
