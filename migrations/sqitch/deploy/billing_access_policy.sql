-- Deploy raxx_queue:billing_access_policy to pg
-- requires: billing_apply_event
-- requires: billing_entitlement
-- requires: billing_mirror_refresh
BEGIN;

-- One access policy for every Stripe state (docs/access-policy.md is rendered from the
-- rule table below). A customer's facts (subscription status, grace window, paused
-- collection, open disputes, a deleted Stripe customer) go through billing_access, which
-- picks the first rule that matches, by priority. `entitled` is access in (active,
-- trialing, grace) and the usable tier is free unless entitled. The reads and the mirror
-- both read billing_customer_state; every change of access writes an audit row naming the
-- rule (billing_refresh_mirror: in the audit row of what made the change, or its own).

-- pause_collection on a subscription: access is kept to the end of the period already
-- paid (pause_paid_through), then suspended until collection resumes
ALTER TABLE billing_subscription
    ADD COLUMN pause_behavior text,
    ADD COLUMN pause_resumes_at timestamptz,
    ADD COLUMN pause_paid_through timestamptz;

-- Which Stripe customer a payment (charge ch_…, PaymentIntent pi_…) belongs to, learnt
-- from invoices (their charge and payment_intent before 2025-03-31.basil) and from
-- invoice_payment.paid (since): a dispute names only its charge and PaymentIntent. The
-- customer is the row's own, or its invoice's.
CREATE TABLE billing_payment_ref (
    payment_ref text NOT NULL,
    stripe_customer_id text,
    stripe_invoice_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT billing_payment_ref_pkey PRIMARY KEY (payment_ref)
);

-- Disputes on a customer's payments. suspends_access is DISPUTE_ACCESS (suspend/keep) as
-- it was at the dispute's latest event.
CREATE TABLE billing_dispute (
    stripe_dispute_id text NOT NULL,
    stripe_customer_id text,
    charge_id text,
    payment_intent_id text,
    status text NOT NULL,
    reason text,
    amount bigint,
    currency text,
    suspends_access boolean NOT NULL,
    closed_at timestamptz,
    stripe_created_at timestamptz,
    source_event_created_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT billing_dispute_pkey PRIMARY KEY (stripe_dispute_id)
);

CREATE INDEX billing_dispute_customer_idx ON billing_dispute (stripe_customer_id);

-- A dispute stops suspending access once it is won (or the inquiry closed, or it was
-- prevented); a lost dispute keeps access suspended.
CREATE FUNCTION billing_dispute_is_open(p_status text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_status NOT IN ('won', 'warning_closed', 'prevented')
$$;

-- The policy: the first rule (lowest priority) whose conditions all hold decides.
-- A NULL condition matches anything.
CREATE TABLE billing_access_rule (
    priority integer NOT NULL,
    rule text NOT NULL,
    statuses text[],
    customer_deleted boolean,
    dispute_open boolean,
    collection_paused boolean,
    grace_open boolean,
    access text NOT NULL,
    access_reason text,
    explanation text NOT NULL,
    CONSTRAINT billing_access_rule_pkey PRIMARY KEY (rule),
    CONSTRAINT billing_access_rule_priority_key UNIQUE (priority),
    CONSTRAINT billing_access_rule_access_check CHECK (access IN (
        'active', 'trialing', 'grace', 'suspended', 'ended', 'none')),
    CONSTRAINT billing_access_rule_reason_check CHECK (access_reason IS NULL OR access_reason IN (
        'payment_failed', 'unpaid', 'paused', 'collection_paused', 'dispute', 'canceled',
        'incomplete', 'customer_deleted'))
);

INSERT INTO billing_access_rule
       (priority, rule, statuses, customer_deleted, dispute_open, collection_paused,
        grace_open, access, access_reason, explanation)
VALUES
    (10, 'customer_deleted', NULL, true, NULL, NULL, NULL, 'ended', 'customer_deleted',
     'The Stripe customer was deleted: its subscriptions ended with it.'),
    (20, 'canceled', '{canceled}', NULL, NULL, NULL, NULL, 'ended', 'canceled',
     'The subscription was canceled (at once, at period end, or by Stripe after dunning).'),
    (30, 'incomplete_expired', '{incomplete_expired}', NULL, NULL, NULL, NULL, 'ended',
     'incomplete', 'The first payment was never made within 23 hours.'),
    (40, 'no_subscription', '{none}', NULL, NULL, NULL, NULL, 'none', NULL,
     'The customer has no subscription.'),
    (50, 'incomplete', '{incomplete}', NULL, NULL, NULL, NULL, 'none', 'incomplete',
     'The first payment has not succeeded yet: access has not begun.'),
    (60, 'dispute', NULL, NULL, true, NULL, NULL, 'suspended', 'dispute',
     'A payment of the customer is disputed and the dispute is not won (DISPUTE_ACCESS=suspend).'),
    (70, 'paused', '{paused}', NULL, NULL, NULL, NULL, 'suspended', 'paused',
     'The subscription is paused (the pause endpoint, or a trial that ended without a payment method).'),
    (80, 'unpaid', '{unpaid}', NULL, NULL, NULL, NULL, 'suspended', 'unpaid',
     'Stripe gave up collecting and marked the subscription unpaid.'),
    (90, 'collection_paused', NULL, NULL, NULL, true, NULL, 'suspended', 'collection_paused',
     'Collection is paused and the period already paid has ended.'),
    (100, 'grace', '{past_due}', NULL, NULL, NULL, true, 'grace', 'payment_failed',
     'A first payment failed: access is kept until grace_until (GRACE_PERIOD_DAYS).'),
    (110, 'grace_lapsed', '{past_due}', NULL, NULL, NULL, false, 'suspended', 'payment_failed',
     'Payment failed and the grace window is over (it lapsed, or a second payment failed).'),
    (120, 'trialing', '{trialing}', NULL, NULL, NULL, NULL, 'trialing', NULL,
     'The subscription is in its trial.'),
    (130, 'active', '{active}', NULL, NULL, NULL, NULL, 'active', NULL,
     'The subscription is paid up.');

-- A customer's access at p_at: the deciding rule, and when it may next change by time
-- alone (a grace window ending, a paused collection's paid period ending). One row
-- (every combination of facts meets a rule: tests/billing/test_access_policy_doc.py); a
-- set-returning SQL function so that the planner inlines it into the views.
CREATE FUNCTION billing_access(
    p_status text, p_grace_until timestamptz, p_pause_paid_through timestamptz,
    p_dispute_open boolean, p_customer_deleted boolean, p_at timestamptz)
RETURNS TABLE (access text, access_reason text, rule text, due_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- any instant still ahead can change the deciding rule (the reason, if not the
    -- access: a lapsed grace window under paused collection becomes collection_paused)
    SELECT r.access, r.access_reason, r.rule,
           least(CASE WHEN p_grace_until > p_at THEN p_grace_until END,
                 CASE WHEN p_pause_paid_through > p_at THEN p_pause_paid_through END)
      FROM billing_access_rule AS r
     WHERE (r.statuses IS NULL OR coalesce(p_status, 'none') = ANY (r.statuses))
       AND (r.customer_deleted IS NULL OR r.customer_deleted = coalesce(p_customer_deleted, false))
       AND (r.dispute_open IS NULL OR r.dispute_open = coalesce(p_dispute_open, false))
       AND (r.collection_paused IS NULL
            OR r.collection_paused = coalesce(p_pause_paid_through <= p_at, false))
       AND (r.grace_open IS NULL
            OR r.grace_open = coalesce(p_at < p_grace_until, false))
     ORDER BY r.priority
     LIMIT 1
$$;

CREATE FUNCTION billing_access_entitles(p_access text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_access IN ('active', 'trialing', 'grace')
$$;

DROP VIEW billing_customer_state;
DROP VIEW billing_current_subscription;

-- which of a customer's subscriptions is current: the one that entitles, by its own facts
CREATE VIEW billing_current_subscription AS
SELECT DISTINCT ON (s.stripe_customer_id)
       s.*,
       billing_access_entitles(a.access) AS entitled
  FROM billing_subscription AS s
 LEFT JOIN LATERAL billing_access(s.status, s.grace_until, s.pause_paid_through, false,
                                  false, now()) AS a ON true
 ORDER BY s.stripe_customer_id,
          billing_access_entitles(a.access) DESC,
          billing_status_rank(s.status),
          s.current_period_end DESC NULLS LAST,
          s.stripe_created_at DESC NULLS LAST,
          s.stripe_subscription_id;

-- Every customer with its current subscription, its access (the rule that decided it)
-- and what it may use now: the one source of the billing reads and of the mirror row.
CREATE VIEW billing_customer_state AS
SELECT c.id,
       c.queue_customer_id,
       c.stripe_customer_id,
       c.billing_email,
       c.billing_name,
       c.deleted_at IS NOT NULL AS deleted,
       c.created_at,
       s.stripe_subscription_id,
       coalesce(s.plan_tier, 'free') AS subscribed_tier,
       coalesce(s.status, 'none') AS status,
       s.current_period_end,
       coalesce(s.cancel_at_period_end, false) AS cancel_at_period_end,
       s.trial_end,
       s.grace_until,
       billing_access_entitles(a.access) AS entitled,
       billing_usable_tier(billing_access_entitles(a.access), s.plan_tier) AS plan_tier,
       a.access,
       a.access_reason,
       a.rule AS access_rule,
       a.due_at AS access_due_at,
       s.pause_behavior,
       s.pause_paid_through,
       d.dispute_open
  FROM billing_customer AS c
  LEFT JOIN LATERAL (
        -- OFFSET 0 keeps this a per-customer lookup (see billing_entitlement)
        SELECT * FROM billing_current_subscription AS cs
         WHERE cs.stripe_customer_id = c.stripe_customer_id
        OFFSET 0
       ) AS s ON true
 CROSS JOIN LATERAL (
        SELECT EXISTS (SELECT 1 FROM billing_dispute AS bd
                        WHERE bd.stripe_customer_id = c.stripe_customer_id
                          AND bd.suspends_access
                          AND billing_dispute_is_open(bd.status)) AS dispute_open
       ) AS d
 LEFT JOIN LATERAL billing_access(coalesce(s.status, 'none'), s.grace_until,
                                  s.pause_paid_through, d.dispute_open,
                                  c.deleted_at IS NOT NULL, now()) AS a ON true;

-- The mirror pushes access and access_reason; access_rule, access_changed_at and
-- access_due_at (when the time alone changes access: the expiry job's index) stay here.
ALTER TABLE billing_subscription_mirror
    ADD COLUMN access text NOT NULL DEFAULT 'none',
    ADD COLUMN access_reason text,
    ADD COLUMN access_rule text,
    ADD COLUMN access_changed_at timestamptz,
    ADD COLUMN access_due_at timestamptz,
    ADD CONSTRAINT billing_subscription_mirror_access_check CHECK (access IN (
        'active', 'trialing', 'grace', 'suspended', 'ended', 'none'));

CREATE INDEX billing_subscription_mirror_access_due_idx
    ON billing_subscription_mirror (access_due_at)
    WHERE access_due_at IS NOT NULL;

-- Existing rows learn their access now; their version grows so Raptor receives the new
-- fields (an additive change of the pushed row).
UPDATE billing_subscription_mirror AS m
   SET access = cs.access,
       access_reason = cs.access_reason,
       access_rule = cs.access_rule,
       access_due_at = cs.access_due_at,
       access_changed_at = now(),
       version = m.version + 1,
       updated_at = now(),
       next_push_at = now(),
       push_attempts = 0
  FROM billing_customer_state AS cs
 WHERE cs.queue_customer_id = m.queue_customer_id;

-- billing_store_subscription, as in billing_apply_event, storing pause_collection too
CREATE OR REPLACE FUNCTION billing_store_subscription(p_change jsonb, p_at timestamptz,
                                           p_on_tie text, p_grace_days integer)
RETURNS TABLE (stored text, before jsonb, after jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    c jsonb := p_change;
    v_id text := c ->> 'stripe_subscription_id';
    v_old billing_subscription;
    v_status text := c ->> 'status';
    v_period_end timestamptz := billing_epoch(c, 'current_period_end');
    v_cancel boolean := coalesce((c ->> 'cancel_at_period_end')::boolean, false);
    v_trial_end timestamptz := billing_epoch(c, 'trial_end');
    v_canceled_at timestamptz := billing_epoch(c, 'canceled_at');
    v_ended_at timestamptz := billing_epoch(c, 'ended_at');
    v_grace timestamptz;
    v_failures integer;
    v_deleted_at timestamptz;
    v_pause text := c ->> 'pause_behavior';
    v_paid_through timestamptz;
BEGIN
    IF p_on_tie NOT IN ('raise', 'keep', 'overwrite') THEN
        RAISE EXCEPTION 'unknown tie rule %', p_on_tie USING ERRCODE = 'QU003';
    END IF;
    SELECT * INTO v_old FROM billing_subscription AS s
     WHERE s.stripe_subscription_id = v_id FOR UPDATE;
    IF billing_is_stale(v_old.source_event_created_at, p_at, p_on_tie = 'overwrite') THEN
        RETURN QUERY SELECT 'stale', NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;
    IF v_old.source_event_created_at = p_at AND p_on_tie <> 'overwrite' AND (
           v_old.status IS DISTINCT FROM v_status
        OR v_old.price_id IS DISTINCT FROM c ->> 'price_id'
        OR v_old.current_period_end IS DISTINCT FROM v_period_end
        OR v_old.cancel_at_period_end IS DISTINCT FROM v_cancel
        OR v_old.trial_end IS DISTINCT FROM v_trial_end
        OR v_old.ended_at IS DISTINCT FROM v_ended_at
        OR v_old.pause_behavior IS DISTINCT FROM v_pause) THEN
        IF p_on_tie = 'keep' THEN
            RETURN QUERY SELECT 'kept', NULL::jsonb, NULL::jsonb;
            RETURN;
        END IF;
        RAISE EXCEPTION 'same-second update of subscription %', v_id USING ERRCODE = 'QU001';
    END IF;
    IF p_on_tie = 'keep' AND v_old.source_event_created_at = p_at THEN
        RETURN QUERY SELECT 'kept', NULL::jsonb, NULL::jsonb;  -- nothing it does not know
        RETURN;
    END IF;

    -- the customer was deleted after this state: its subscriptions ended then
    SELECT b.deleted_at INTO v_deleted_at FROM billing_customer AS b
     WHERE b.stripe_customer_id = c ->> 'stripe_customer_id';
    IF v_deleted_at IS NOT NULL AND v_deleted_at >= p_at
       AND v_status NOT IN ('canceled', 'incomplete_expired') THEN
        v_status := 'canceled';
        v_ended_at := coalesce(v_ended_at, v_deleted_at);
    END IF;

    SELECT g.grace_until, g.failures INTO v_grace, v_failures
      FROM billing_grace_on_status(v_status, v_old.grace_until,
                                   coalesce(v_old.payment_failure_count, 0), p_at,
                                   p_grace_days) AS g;

    -- collection paused: access runs to the end of the period paid before the pause
    v_paid_through := CASE
        WHEN v_pause IS NULL THEN NULL
        WHEN v_old.pause_behavior IS NOT NULL
            THEN coalesce(v_old.pause_paid_through, v_old.current_period_end, v_period_end)
        ELSE coalesce(v_old.current_period_end, v_period_end)
    END;

    INSERT INTO billing_subscription AS s
           (stripe_subscription_id, stripe_customer_id, status, price_id, plan_tier,
            current_period_start, current_period_end, cancel_at_period_end, trial_end,
            canceled_at, ended_at, grace_until, payment_failure_count, stripe_created_at,
            source_event_created_at, pause_behavior, pause_resumes_at, pause_paid_through)
    VALUES (v_id, c ->> 'stripe_customer_id', v_status, c ->> 'price_id', c ->> 'plan_tier',
            billing_epoch(c, 'current_period_start'), v_period_end, v_cancel, v_trial_end,
            v_canceled_at, v_ended_at, v_grace, v_failures, billing_epoch(c, 'stripe_created'),
            p_at, v_pause, billing_epoch(c, 'pause_resumes_at'), v_paid_through)
    ON CONFLICT ON CONSTRAINT billing_subscription_pkey DO UPDATE
       SET stripe_customer_id = EXCLUDED.stripe_customer_id,
           status = EXCLUDED.status,
           price_id = EXCLUDED.price_id,
           plan_tier = EXCLUDED.plan_tier,
           current_period_start = EXCLUDED.current_period_start,
           current_period_end = EXCLUDED.current_period_end,
           cancel_at_period_end = EXCLUDED.cancel_at_period_end,
           trial_end = EXCLUDED.trial_end,
           canceled_at = EXCLUDED.canceled_at,
           ended_at = EXCLUDED.ended_at,
           grace_until = EXCLUDED.grace_until,
           payment_failure_count = EXCLUDED.payment_failure_count,
           stripe_created_at = coalesce(EXCLUDED.stripe_created_at, s.stripe_created_at),
           source_event_created_at = greatest(s.source_event_created_at, p_at),
           pause_behavior = EXCLUDED.pause_behavior,
           pause_resumes_at = EXCLUDED.pause_resumes_at,
           pause_paid_through = EXCLUDED.pause_paid_through,
           updated_at = now();

    RETURN QUERY SELECT
        CASE WHEN v_old.stripe_subscription_id IS NULL THEN 'inserted' ELSE 'updated' END,
        CASE WHEN v_old.stripe_subscription_id IS NULL THEN NULL ELSE
            jsonb_build_object('status', v_old.status, 'plan_tier', v_old.plan_tier,
                               'price_id', v_old.price_id,
                               'current_period_end', v_old.current_period_end,
                               'cancel_at_period_end', v_old.cancel_at_period_end,
                               'grace_until', v_old.grace_until,
                               'pause_behavior', v_old.pause_behavior) END,
        jsonb_build_object('status', v_status, 'plan_tier', c ->> 'plan_tier',
                           'price_id', c ->> 'price_id', 'current_period_end', v_period_end,
                           'cancel_at_period_end', v_cancel, 'grace_until', v_grace,
                           'pause_behavior', v_pause, 'pause_paid_through', v_paid_through);
END;
$$;

-- A dispute event: the dispute's latest state, whose customer came from the event or from
-- billing_payment_ref. DISPUTE_ACCESS (p.dispute_access) says whether it suspends access.
CREATE FUNCTION billing_apply_dispute(p jsonb, p_customer text, p_created timestamptz,
                                      p_force boolean)
RETURNS TABLE (outcome text, before jsonb, after jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    c jsonb := p -> 'change';
    v_id text := c ->> 'stripe_dispute_id';
    v_old billing_dispute;
    v_suspends boolean := coalesce(p ->> 'dispute_access', 'suspend') <> 'keep';
BEGIN
    SELECT * INTO v_old FROM billing_dispute AS d WHERE d.stripe_dispute_id = v_id FOR UPDATE;
    IF billing_is_stale(v_old.source_event_created_at, p_created, p_force) THEN
        RETURN QUERY SELECT 'stale', NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;
    INSERT INTO billing_dispute AS d
           (stripe_dispute_id, stripe_customer_id, charge_id, payment_intent_id, status, reason,
            amount, currency, suspends_access, closed_at, stripe_created_at,
            source_event_created_at)
    VALUES (v_id, p_customer, c ->> 'charge_id', c ->> 'payment_intent_id', c ->> 'status',
            c ->> 'reason', (c ->> 'amount')::bigint, c ->> 'currency', v_suspends,
            CASE WHEN (c ->> 'closed')::boolean THEN p_created END,
            billing_epoch(c, 'stripe_created'), p_created)
    ON CONFLICT ON CONSTRAINT billing_dispute_pkey DO UPDATE
       SET stripe_customer_id = coalesce(EXCLUDED.stripe_customer_id, d.stripe_customer_id),
           charge_id = coalesce(EXCLUDED.charge_id, d.charge_id),
           payment_intent_id = coalesce(EXCLUDED.payment_intent_id, d.payment_intent_id),
           status = EXCLUDED.status,
           reason = EXCLUDED.reason,
           amount = EXCLUDED.amount,
           currency = EXCLUDED.currency,
           suspends_access = EXCLUDED.suspends_access,
           closed_at = coalesce(EXCLUDED.closed_at, d.closed_at),
           source_event_created_at = greatest(d.source_event_created_at, p_created),
           updated_at = now();
    RETURN QUERY SELECT 'applied',
        CASE WHEN v_old.stripe_dispute_id IS NULL THEN NULL ELSE
            jsonb_build_object('status', v_old.status,
                               'open', billing_dispute_is_open(v_old.status)) END,
        jsonb_build_object('status', c ->> 'status',
                           'open', billing_dispute_is_open(c ->> 'status'),
                           'suspends_access', v_suspends,
                           'customer_known', p_customer IS NOT NULL);
END;
$$;

-- billing_apply_stripe_event, as in billing_apply_event, with disputes, the payments
-- invoices name, and a change of access in its audit row and its answer (the caller logs it)
DROP FUNCTION billing_apply_stripe_event(jsonb);
CREATE FUNCTION billing_apply_stripe_event(p jsonb)
RETURNS TABLE (outcome text, queue_customer_id text, mirror_changed boolean,
               mirror_version bigint, access_change jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_created timestamptz := billing_epoch(p, 'created');
    v_family text := p ->> 'family';
    v_customer text := p ->> 'stripe_customer_id';
    v_force boolean := coalesce((p ->> 'force')::boolean, false);
    v_outcome text := 'applied';
    v_stored text;
    v_before jsonb;
    v_after jsonb;
    v_queue_id text;
    v_conflict boolean := false;
    v_mirror_changed boolean := false;
    v_mirror_version bigint;
    v_mirror_before jsonb;
    v_mirror_after jsonb;
    v_access_change jsonb;
BEGIN
    -- a dispute names its payment, not its customer: the invoices told which it is
    IF v_family = 'dispute' AND v_customer IS NULL THEN
        SELECT coalesce(r.stripe_customer_id, i.stripe_customer_id) INTO v_customer
          FROM billing_payment_ref AS r
          LEFT JOIN billing_invoice AS i ON i.stripe_invoice_id = r.stripe_invoice_id
         WHERE r.payment_ref IN (p -> 'change' ->> 'charge_id',
                                 p -> 'change' ->> 'payment_intent_id')
         ORDER BY 1 NULLS LAST
         LIMIT 1;
    ELSIF v_family = 'payment' AND v_customer IS NULL THEN
        SELECT i.stripe_customer_id INTO v_customer FROM billing_invoice AS i
         WHERE i.stripe_invoice_id = p -> 'change' ->> 'stripe_invoice_id';
    END IF;

    INSERT INTO processed_stripe_events AS e
           (event_id, type, outcome, stripe_customer_id, event_created_at, api_version,
            livemode, source, request_id, payload)
    VALUES (p ->> 'event_id', p ->> 'type',
            CASE WHEN v_family IN ('ignored') THEN 'ignored' ELSE 'applied' END,
            v_customer, v_created, p ->> 'api_version',
            coalesce((p ->> 'livemode')::boolean, false), coalesce(p ->> 'source', 'webhook'),
            p ->> 'request_id', p -> 'payload')
    ON CONFLICT ON CONSTRAINT processed_stripe_events_pkey DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'duplicate', NULL::text, false, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;
    IF v_family = 'ignored' THEN
        RETURN QUERY SELECT 'ignored', NULL::text, false, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;

    IF v_customer IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(billing_customer_lock_key(v_customer));
    END IF;

    CASE v_family
        WHEN 'customer' THEN
            SELECT r.outcome, r.before, r.after INTO v_outcome, v_before, v_after
              FROM billing_apply_customer(p, v_created, v_force) AS r;
        WHEN 'subscription' THEN
            SELECT r.stored, r.before, r.after INTO v_stored, v_before, v_after
              FROM billing_store_subscription(
                       p -> 'change', v_created,
                       CASE WHEN v_force THEN 'overwrite' ELSE 'raise' END,
                       (p ->> 'grace_days')::integer) AS r;
            v_outcome := CASE WHEN v_stored = 'stale' THEN 'stale' ELSE 'applied' END;
        WHEN 'invoice' THEN
            SELECT r.outcome, r.before, r.after INTO v_outcome, v_before, v_after
              FROM billing_apply_invoice(p, v_created, v_force) AS r;
            INSERT INTO billing_payment_ref (payment_ref, stripe_customer_id, stripe_invoice_id)
            SELECT ref, v_customer, p ->> 'object_id'
              FROM jsonb_array_elements_text(coalesce(p -> 'change' -> 'payment_refs',
                                                      '[]'::jsonb)) AS ref
            ON CONFLICT ON CONSTRAINT billing_payment_ref_pkey DO NOTHING;
        WHEN 'payment' THEN
            INSERT INTO billing_payment_ref AS r
                   (payment_ref, stripe_customer_id, stripe_invoice_id)
            SELECT ref, v_customer, p -> 'change' ->> 'stripe_invoice_id'
              FROM jsonb_array_elements_text(coalesce(p -> 'change' -> 'payment_refs',
                                                      '[]'::jsonb)) AS ref
            ON CONFLICT ON CONSTRAINT billing_payment_ref_pkey DO UPDATE
               SET stripe_customer_id = coalesce(r.stripe_customer_id,
                                                 EXCLUDED.stripe_customer_id),
                   stripe_invoice_id = coalesce(r.stripe_invoice_id, EXCLUDED.stripe_invoice_id);
            v_after := jsonb_build_object(
                'payments', jsonb_array_length(coalesce(p -> 'change' -> 'payment_refs',
                                                        '[]'::jsonb)),
                'customer_known', v_customer IS NOT NULL);
        WHEN 'dispute' THEN
            SELECT r.outcome, r.before, r.after INTO v_outcome, v_before, v_after
              FROM billing_apply_dispute(p, v_customer, v_created, v_force) AS r;
        WHEN 'checkout' THEN
            v_after := (p -> 'change') - 'subscription'::text;
            -- a session carrying its subscription expanded: stored like any other
            IF jsonb_typeof(p -> 'change' -> 'subscription') = 'object' THEN
                SELECT r.stored INTO v_stored
                  FROM billing_store_subscription(
                           p -> 'change' -> 'subscription', v_created, 'keep',
                           (p ->> 'grace_days')::integer) AS r;
                v_after := v_after || jsonb_build_object('subscription_stored', v_stored);
            END IF;
        WHEN 'record' THEN
            v_after := p -> 'change';
        ELSE
            RAISE EXCEPTION 'unknown event family %', v_family USING ERRCODE = 'QU003';
    END CASE;

    -- linking is additive, so even a stale event may link its customer
    IF v_customer IS NOT NULL THEN
        SELECT l.queue_customer_id, l.conflict INTO v_queue_id, v_conflict
          FROM billing_link_customer(p -> 'change' ->> 'queue_customer_id', v_customer,
                                     NULL, NULL, 'event') AS l;
    END IF;

    IF v_outcome = 'stale' THEN
        UPDATE processed_stripe_events SET outcome = 'stale' WHERE event_id = p ->> 'event_id';
        RETURN QUERY SELECT 'stale', v_queue_id, false, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;

    IF v_queue_id IS NOT NULL THEN
        -- a change of access goes in this event's audit row, with the rule that decided it
        SELECT m.changed, m.version, m.before, m.after, m.access_change
          INTO v_mirror_changed, v_mirror_version, v_mirror_before, v_mirror_after,
               v_access_change
          FROM billing_refresh_mirror(v_queue_id, NULL, NULL, NULL) AS m;
        v_mirror_changed := coalesce(v_mirror_changed, false);
    END IF;

    INSERT INTO billing_action_log
           (actor, action, queue_customer_id, stripe_object_id, event_id, request_id, summary)
    VALUES (coalesce(p ->> 'actor', 'stripe'), coalesce(p ->> 'action', 'stripe.' || (p ->> 'type')),
            v_queue_id,
            p ->> 'object_id', p ->> 'event_id', p ->> 'request_id',
            jsonb_strip_nulls(jsonb_build_object(
                'before', v_before, 'after', v_after,
                'link_conflict', CASE WHEN v_conflict THEN true END,
                'access', v_access_change,
                'mirror', CASE WHEN v_mirror_changed THEN
                    jsonb_build_object('version', v_mirror_version,
                                       'before', v_mirror_before, 'after', v_mirror_after)
                    END)));

    RETURN QUERY SELECT 'applied', v_queue_id, v_mirror_changed, v_mirror_version,
        v_access_change;
END;
$$;

-- Recompute a customer's mirror row from billing_customer_state. The version grows, and
-- the row becomes pending for the dispatcher, only when a pushed field changes (access
-- and access_reason among them). A change of access is described in access_change (the
-- rule that decided it, before, after and the facts it read): the caller puts it in its
-- own audit row (an event's, the expiry job's), or, given p_actor, an audit row
-- 'access.changed' is appended here as p_actor for p_event_id / p_request_id.
DROP FUNCTION billing_refresh_mirror(text);
CREATE FUNCTION billing_refresh_mirror(p_queue_customer_id text, p_actor text,
                                       p_event_id text, p_request_id text)
RETURNS TABLE (changed boolean, version bigint, before jsonb, after jsonb,
               access_change jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_state billing_customer_state;
    v_old billing_subscription_mirror;
    v_locked_at timestamptz;
    v_locked_from text;
    v_version bigint;
    v_before jsonb;
    v_after jsonb;
    v_access_changed boolean;
    v_change jsonb;
BEGIN
    SELECT * INTO v_state FROM billing_customer_state AS cs
     WHERE cs.queue_customer_id = p_queue_customer_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    SELECT * INTO v_old FROM billing_subscription_mirror AS m
     WHERE m.queue_customer_id = p_queue_customer_id
       FOR UPDATE;

    IF NOT FOUND THEN
        INSERT INTO billing_subscription_mirror AS m
               (queue_customer_id, plan_tier, status, current_period_end, grace_until,
                entitled, access, access_reason, access_rule, access_changed_at,
                access_due_at, version, updated_at)
        VALUES (p_queue_customer_id, v_state.plan_tier, v_state.status,
                v_state.current_period_end, v_state.grace_until, v_state.entitled,
                v_state.access, v_state.access_reason, v_state.access_rule, now(),
                v_state.access_due_at, 1, now())
        RETURNING m.version INTO v_version;
        v_before := NULL;
        -- a new row starts from none: anything else is a change of access
        v_access_changed := v_state.access <> 'none' OR v_state.access_reason IS NOT NULL;
    ELSE
        -- the downgrade lock
        v_locked_at := v_old.feature_locked_at;
        v_locked_from := v_old.locked_from_tier;
        IF billing_tier_rank(v_state.plan_tier) < billing_tier_rank(v_old.plan_tier) THEN
            IF v_locked_at IS NULL THEN
                v_locked_at := now();
                v_locked_from := v_old.plan_tier;
            ELSIF billing_tier_rank(v_old.plan_tier) > billing_tier_rank(v_locked_from) THEN
                v_locked_from := v_old.plan_tier;
            END IF;
        END IF;
        IF v_locked_at IS NOT NULL AND v_state.entitled
           AND billing_tier_rank(v_state.plan_tier) >= billing_tier_rank(v_locked_from) THEN
            v_locked_at := NULL;
            v_locked_from := NULL;
        END IF;

        v_access_changed := v_old.access IS DISTINCT FROM v_state.access
                         OR v_old.access_reason IS DISTINCT FROM v_state.access_reason;

        IF v_old.plan_tier = v_state.plan_tier
           AND v_old.status = v_state.status
           AND v_old.current_period_end IS NOT DISTINCT FROM v_state.current_period_end
           AND v_old.grace_until IS NOT DISTINCT FROM v_state.grace_until
           AND v_old.entitled = v_state.entitled
           AND v_old.feature_locked_at IS NOT DISTINCT FROM v_locked_at
           AND NOT v_access_changed THEN
            -- not pushed: kept current without a new version
            IF v_old.access_rule IS DISTINCT FROM v_state.access_rule
               OR v_old.access_due_at IS DISTINCT FROM v_state.access_due_at THEN
                UPDATE billing_subscription_mirror AS m
                   SET access_rule = v_state.access_rule, access_due_at = v_state.access_due_at
                 WHERE m.queue_customer_id = p_queue_customer_id;
            END IF;
            RETURN QUERY SELECT false, v_old.version, NULL::jsonb, NULL::jsonb, NULL::jsonb;
            RETURN;
        END IF;

        UPDATE billing_subscription_mirror AS m
           SET plan_tier = v_state.plan_tier,
               status = v_state.status,
               current_period_end = v_state.current_period_end,
               grace_until = v_state.grace_until,
               entitled = v_state.entitled,
               feature_locked_at = v_locked_at,
               locked_from_tier = v_locked_from,
               access = v_state.access,
               access_reason = v_state.access_reason,
               access_rule = v_state.access_rule,
               access_changed_at = CASE WHEN v_access_changed THEN now()
                                        ELSE m.access_changed_at END,
               access_due_at = v_state.access_due_at,
               version = m.version + 1,
               updated_at = now(),
               next_push_at = now(),
               push_attempts = 0
         WHERE m.queue_customer_id = p_queue_customer_id
        RETURNING m.version INTO v_version;
        v_before := jsonb_build_object(
            'plan_tier', v_old.plan_tier, 'status', v_old.status, 'entitled', v_old.entitled,
            'grace_until', v_old.grace_until, 'current_period_end', v_old.current_period_end,
            'feature_locked_at', v_old.feature_locked_at, 'access', v_old.access,
            'access_reason', v_old.access_reason);
    END IF;

    v_after := jsonb_build_object(
        'plan_tier', v_state.plan_tier, 'status', v_state.status, 'entitled', v_state.entitled,
        'grace_until', v_state.grace_until, 'current_period_end', v_state.current_period_end,
        'feature_locked_at', v_locked_at, 'access', v_state.access,
        'access_reason', v_state.access_reason);

    IF v_access_changed THEN
        v_change := jsonb_build_object(
                    'rule', v_state.access_rule,
                    'before', jsonb_build_object(
                        'access', coalesce(v_old.access, 'none'),
                        'access_reason', v_old.access_reason,
                        'rule', v_old.access_rule),
                    'after', jsonb_build_object(
                        'access', v_state.access, 'access_reason', v_state.access_reason),
                    'basis', jsonb_strip_nulls(jsonb_build_object(
                        'status', v_state.status,
                        'grace_until', v_state.grace_until,
                        'pause_behavior', v_state.pause_behavior,
                        'pause_paid_through', v_state.pause_paid_through,
                        'dispute_open', v_state.dispute_open,
                        'customer_deleted', v_state.deleted)));
    END IF;
    IF v_change IS NOT NULL AND p_actor IS NOT NULL THEN
        INSERT INTO billing_action_log
               (actor, action, queue_customer_id, stripe_object_id, event_id, request_id,
                summary)
        VALUES (p_actor, 'access.changed', p_queue_customer_id, v_state.stripe_subscription_id,
                p_event_id, p_request_id, jsonb_build_object('access', v_change));
    END IF;

    RETURN QUERY SELECT true, v_version, v_before, v_after, v_change;
END;
$$;

-- The call of @wave1: a change of access is audited as system.
CREATE FUNCTION billing_refresh_mirror(p_queue_customer_id text)
RETURNS TABLE (changed boolean, version bigint, before jsonb, after jsonb,
               access_change jsonb)
LANGUAGE sql AS $$
    SELECT * FROM billing_refresh_mirror(p_queue_customer_id, 'system', NULL, NULL)
$$;

COMMIT;
