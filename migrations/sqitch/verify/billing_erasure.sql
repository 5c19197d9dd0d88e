-- Verify raxx_queue:billing_erasure on pg
SELECT erased_at FROM billing_customer WHERE false;
SELECT ref, queue_customer_id FROM billing_erased_reference WHERE false;
SELECT 1 / (billing_redact_payload('{"email": "a@b.c"}') = '{"email": null}')::int;
SELECT 'billing_erase_customer(text, text)'::regprocedure;
SELECT 1 / count(*) FROM pg_trigger WHERE tgname = 'billing_customer_tombstone';
SELECT 1 / count(*) FROM pg_trigger WHERE tgname = 'billing_event_redact';
