-- Verify raxx_queue:billing_ordering on pg
SELECT 1 / CASE WHEN billing_is_stale(now(), now() - interval '1 s', false)
                 AND NOT billing_is_stale(now(), now() - interval '1 s', true)
                 AND NOT billing_is_stale(now(), now(), false)
                 AND NOT billing_is_stale(NULL, now(), false)
            THEN 1 ELSE 0 END;
