-- Verify raxx_queue:billing_invoice on pg
SELECT stripe_invoice_id, stripe_customer_id, stripe_subscription_id, status, number, currency,
       amount_due, amount_paid, amount_remaining, attempt_count, billing_reason,
       hosted_invoice_url, period_start, period_end, paid_at, stripe_created_at,
       source_event_created_at, created_at, updated_at
  FROM billing_invoice
 WHERE false;
