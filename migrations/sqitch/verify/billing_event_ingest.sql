-- Verify raxx_queue:billing_event_ingest on pg
SELECT 1 / (count(*) = 0)::int FROM pg_trigger WHERE tgname = 'billing_event_recheck';
SELECT 1 / (attstorage = 'm')::int FROM pg_attribute
 WHERE attrelid = 'processed_stripe_events'::regclass AND attname = 'payload';
SELECT 1 / (count(*) = 3)::int FROM pg_proc
 WHERE proname LIKE 'billing_grace_on_%' AND prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql');
