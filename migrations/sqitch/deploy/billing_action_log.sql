-- Deploy raxx_queue:billing_action_log to pg
BEGIN;

-- Rows are appended unsealed by the transaction that made the change; the sealer
-- (raxx_queue.audit) later sets prev_hash/row_hash in id order. Chain order is id order.
CREATE TABLE billing_action_log (
    id bigint GENERATED ALWAYS AS IDENTITY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    queue_customer_id text,
    stripe_object_id text,
    event_id text,
    request_id text,
    summary jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash text,
    row_hash text,
    sealed_at timestamptz,
    CONSTRAINT billing_action_log_pkey PRIMARY KEY (id),
    CONSTRAINT billing_action_log_actor_check
        CHECK (actor IN ('stripe', 'raptor', 'console', 'reconcile', 'system')),
    CONSTRAINT billing_action_log_seal_check
        CHECK ((row_hash IS NULL) = (sealed_at IS NULL) AND (row_hash IS NULL) = (prev_hash IS NULL))
);

CREATE INDEX billing_action_log_unsealed_idx ON billing_action_log (id) WHERE row_hash IS NULL;
CREATE INDEX billing_action_log_queue_customer_id_idx ON billing_action_log (queue_customer_id, id);

-- Append-only: the only permitted update is sealing an unsealed row, once.
CREATE FUNCTION billing_action_log_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'billing_action_log is append-only' USING ERRCODE = 'QU002';
    END IF;
    IF OLD.row_hash IS NOT NULL
       OR NEW.id IS DISTINCT FROM OLD.id
       OR NEW.occurred_at IS DISTINCT FROM OLD.occurred_at
       OR NEW.actor IS DISTINCT FROM OLD.actor
       OR NEW.action IS DISTINCT FROM OLD.action
       OR NEW.queue_customer_id IS DISTINCT FROM OLD.queue_customer_id
       OR NEW.stripe_object_id IS DISTINCT FROM OLD.stripe_object_id
       OR NEW.event_id IS DISTINCT FROM OLD.event_id
       OR NEW.request_id IS DISTINCT FROM OLD.request_id
       OR NEW.summary IS DISTINCT FROM OLD.summary THEN
        RAISE EXCEPTION 'billing_action_log rows can only be sealed' USING ERRCODE = 'QU002';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER billing_action_log_append_only
    BEFORE UPDATE OR DELETE ON billing_action_log
    FOR EACH ROW EXECUTE FUNCTION billing_action_log_guard();

COMMIT;
