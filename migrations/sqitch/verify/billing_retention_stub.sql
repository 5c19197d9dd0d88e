-- Verify raxx_queue:billing_retention_stub on pg
SELECT 1 / (position('billing_strip_payload(e.payload)' IN prosrc) > 0)::integer
  FROM pg_proc WHERE proname = 'billing_strip_old_payloads';
