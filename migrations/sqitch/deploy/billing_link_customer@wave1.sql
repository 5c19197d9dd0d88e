-- Deploy raxx_queue:billing_link_customer to pg
-- requires: billing_customer
BEGIN;

-- Create or link the billing customer of a queue_customer_id, in one round trip. Called by
-- the subscribe / customer routes after Stripe answered, under the Stripe customer's lock.
--   * the queue customer already has this Stripe customer (a replay, or a webhook linked it
--     first), or no Stripe customer is given: nothing changes, Stripe-sourced data is kept;
--   * it has none, or its Stripe customer was deleted: it is linked to the given one;
--   * a row the webhook created for this Stripe customer before it knew the queue id is
--     adopted (merged into the queue customer's row when that exists);
--   * a link to a different live customer on either side raises QU010.
-- created: the queue customer had no row; linked: its Stripe customer changed.
CREATE FUNCTION billing_link_customer(
    p_queue_customer_id text,
    p_stripe_customer_id text,
    p_email text,
    p_name text
)
RETURNS TABLE (created boolean, linked boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_row billing_customer;
    v_has_row boolean;
    v_orphan billing_customer;
    v_has_orphan boolean := false;
BEGIN
    SELECT * INTO v_row FROM billing_customer AS c
     WHERE c.queue_customer_id = p_queue_customer_id
       FOR UPDATE;
    v_has_row := FOUND;

    IF v_has_row AND (p_stripe_customer_id IS NULL
                      OR v_row.stripe_customer_id = p_stripe_customer_id) THEN
        RETURN QUERY SELECT false, false;
        RETURN;
    END IF;
    IF v_has_row AND v_row.stripe_customer_id IS NOT NULL AND v_row.deleted_at IS NULL THEN
        RAISE EXCEPTION 'the queue customer is linked to another Stripe customer'
              USING ERRCODE = 'QU010';
    END IF;

    IF p_stripe_customer_id IS NOT NULL THEN
        SELECT * INTO v_orphan FROM billing_customer AS c
         WHERE c.stripe_customer_id = p_stripe_customer_id
           FOR UPDATE;
        v_has_orphan := FOUND;
        IF v_has_orphan AND v_orphan.queue_customer_id IS NOT NULL THEN
            RAISE EXCEPTION 'the Stripe customer is linked to another queue customer'
                  USING ERRCODE = 'QU010';
        END IF;
    END IF;

    IF NOT v_has_row THEN
        IF v_has_orphan THEN
            UPDATE billing_customer AS c
               SET queue_customer_id = p_queue_customer_id,
                   billing_email = coalesce(c.billing_email, p_email),
                   billing_name = coalesce(c.billing_name, p_name),
                   updated_at = now()
             WHERE c.id = v_orphan.id;
            RETURN QUERY SELECT true, true;
            RETURN;
        END IF;
        INSERT INTO billing_customer AS c
               (queue_customer_id, stripe_customer_id, billing_email, billing_name)
        VALUES (p_queue_customer_id, p_stripe_customer_id, p_email, p_name)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            -- a concurrent transaction created it since our read: decide again on its row
            RETURN QUERY SELECT false, l.linked
              FROM billing_link_customer(p_queue_customer_id, p_stripe_customer_id,
                                         p_email, p_name) AS l;
            RETURN;
        END IF;
        RETURN QUERY SELECT true, p_stripe_customer_id IS NOT NULL;
        RETURN;
    END IF;

    -- the queue customer has no Stripe customer, or its Stripe customer was deleted
    IF v_has_orphan THEN
        DELETE FROM billing_customer AS c WHERE c.id = v_orphan.id;
        UPDATE billing_customer AS c
           SET stripe_customer_id = p_stripe_customer_id,
               billing_email = coalesce(v_orphan.billing_email, p_email, c.billing_email),
               billing_name = coalesce(v_orphan.billing_name, p_name, c.billing_name),
               billing_address = coalesce(v_orphan.billing_address, c.billing_address),
               deleted_at = v_orphan.deleted_at,
               source_event_created_at = v_orphan.source_event_created_at,
               updated_at = now()
         WHERE c.id = v_row.id;
    ELSE
        UPDATE billing_customer AS c
           SET stripe_customer_id = p_stripe_customer_id,
               billing_email = coalesce(p_email, c.billing_email),
               billing_name = coalesce(p_name, c.billing_name),
               deleted_at = NULL,
               -- the guard's time belonged to the previous Stripe customer's events
               source_event_created_at = NULL,
               updated_at = now()
         WHERE c.id = v_row.id;
    END IF;
    RETURN QUERY SELECT false, true;
END;
$$;

COMMIT;
