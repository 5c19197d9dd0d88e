-- Verify raxx_queue:billing_event_ingest on pg
SELECT 1 / (count(*) = 0)::int FROM pg_trigger WHERE tgname = 'billing_event_recheck';
SELECT 1 / (attstorage = 'm')::int FROM pg_attribute
 WHERE attrelid = 'processed_stripe_events'::regclass AND attname = 'payload';
