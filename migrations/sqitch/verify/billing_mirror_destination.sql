-- Verify raxx_queue:billing_mirror_destination on pg
SELECT destination, disabled_at, disabled_reason, updated_at
  FROM billing_mirror_destination WHERE false;
