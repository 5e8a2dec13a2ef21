// The envelope as the Rust side writes it (shared/core/src/envelope.rs, OutgoingEntry in
// shared/aws/src/sqs.rs): the body `{"id","type","payload","meta"}`, and the String
// message attributes `type` and `correlationId`, counted into the size SQS checks.

import type { EnvelopeOf, MessageType, PayloadByType } from "./generated/contract.js";

/** `process-email-queue`'s `meta.source` (`SOURCE` in shared/jobs/src/email/tick.rs). */
export const TICK_SOURCE = "process-email-queue";
/** A UUID's length as text (`Envelope::wrap` gives each envelope a fresh v4 UUID). */
const UUID_CHARS = 36;
/** `Utc::now()` as chrono's serde writes it, at its longest: nine fraction digits. */
const TICK_CREATED_AT = "2000-01-01T00:00:00.000000000Z";
/** The row's `dueAt` (whole epoch seconds, `DateTime::from_timestamp(seconds, 0)`): no fraction. */
const TICK_DUE_AT = "2000-01-01T00:00:00Z";

/** One message ready for SendMessageBatch. */
export interface OutgoingMessage {
  /** The envelope's id (the unit's id). */
  envelopeId: string;
  correlationId: string;
  body: string;
  attributes: ReadonlyArray<readonly [name: string, value: string]>;
  /** The bytes SQS counts against its limits: body, and each attribute's name, type and value. */
  size: number;
}

/** RFC 3339 in UTC, as chrono reads it. */
export function timestamp(date: Date): string {
  return date.toISOString();
}

export interface EnvelopeMeta {
  /** Ties together everything done for one unit: its id. */
  correlationId: string;
  createdAt: Date;
  /** Who dispatched it, e.g. `webapp`. */
  source: string;
  /** When the unit was due: metrics count its latency from here. */
  dueAt?: Date;
}

/** An envelope, its fields in the order the Rust side writes them. */
export function envelope<T extends MessageType>(
  type: T,
  id: string,
  payload: PayloadByType[T],
  meta: EnvelopeMeta,
): EnvelopeOf<T> {
  return {
    id,
    type,
    payload,
    meta: {
      correlationId: meta.correlationId,
      createdAt: timestamp(meta.createdAt),
      source: meta.source,
      attempt: 1,
      ...(meta.dueAt ? { dueAt: timestamp(meta.dueAt) } : {}),
    },
  };
}

export function outgoing(message: EnvelopeOf<MessageType>): OutgoingMessage {
  const body = JSON.stringify(message);
  const attributes = [
    ["type", message.type],
    ["correlationId", message.meta.correlationId],
  ] as const;
  const size =
    Buffer.byteLength(body, "utf8") +
    attributes.reduce(
      (sum, [name, value]) => sum + Buffer.byteLength(name) + "String".length + Buffer.byteLength(value),
      0,
    );
  return { envelopeId: message.id, correlationId: message.meta.correlationId, body, attributes, size };
}

/**
 * The size of the envelope the scheduled function's tick makes of the same row when it
 * sends it itself (a legacy email, a released claim, an abandoned claim it takes over):
 * `Envelope::wrap` (shared/core/src/envelope.rs) with a UUID for its id, the tick's
 * source, `createdAt` with nine fraction digits (chrono writes 0, 3, 6 or 9: the most
 * is counted), and `dueAt` the row's whole second, written without a fraction; the
 * attributes as `OutgoingEntry::from_envelope` (shared/aws/src/sqs.rs) counts them. The
 * payload is the row's message, which serde_json writes byte for byte as JSON.stringify
 * does for the strings validation lets through (the same escapes: `\"`, `\\`, `\t`,
 * `\n`, `\r`; every other character as it is).
 */
export function tickEnvelopeSize<T extends MessageType>(type: T, payload: PayloadByType[T], correlationId: string): number {
  return outgoing({
    id: "0".repeat(UUID_CHARS),
    type,
    payload,
    meta: { correlationId, createdAt: TICK_CREATED_AT, source: TICK_SOURCE, attempt: 1, dueAt: TICK_DUE_AT },
  } as EnvelopeOf<MessageType>).size;
}
