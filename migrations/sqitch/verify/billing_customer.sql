-- Verify raxx_queue:billing_customer on pg
SELECT id, queue_customer_id, stripe_customer_id, billing_email, billing_name, billing_address,
       deleted_at, source_event_created_at, created_at, updated_at
  FROM billing_customer
 WHERE false;
