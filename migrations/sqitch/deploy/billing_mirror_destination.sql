-- Deploy raxx_queue:billing_mirror_destination to pg
-- requires: billing_subscription_mirror
BEGIN;

-- Raptor's mirror endpoint as a destination that can be disabled: a 410 Gone answer
-- disables it (every process stops claiming, rows stay pending, nothing is dropped)
-- until an operator runs `raxx-queue mirror resume`. No row: enabled.
CREATE TABLE billing_mirror_destination (
    destination text NOT NULL DEFAULT 'raptor',
    disabled_at timestamptz,
    disabled_reason text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT billing_mirror_destination_pkey PRIMARY KEY (destination),
    CONSTRAINT billing_mirror_destination_name_check CHECK (destination = 'raptor')
);

COMMIT;
