-- Verify raxx_queue:billing_write_costs on pg
SELECT 1 / (count(*) = 2)::int FROM pg_constraint
 WHERE contype = 'c'
   AND conrelid IN ('processed_stripe_events'::regclass, 'billing_action_log'::regclass,
                    'billing_subscription'::regclass, 'billing_subscription_mirror'::regclass,
                    'billing_invoice'::regclass);
SELECT 1 / (count(*) = 10)::int FROM pg_type
 WHERE typtype = 'd' AND typname IN ('billing_event_outcome', 'billing_event_source',
       'billing_actor', 'billing_subscription_status', 'billing_mirror_status',
       'billing_plan_tier', 'billing_paid_tier', 'billing_access_state',
       'billing_invoice_status', 'billing_failure_count');
SELECT 1 / (count(*) = 0)::int FROM pg_attribute
 WHERE attrelid = 'processed_stripe_events'::regclass AND attnum > 0 AND attstorage = 'x';
SELECT 'billing_customer_state'::regclass, 'billing_current_subscription'::regclass;
