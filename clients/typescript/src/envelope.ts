// The envelope as the Rust side writes it (shared/core/src/envelope.rs, OutgoingEntry in
// shared/aws/src/sqs.rs): the body `{"id","type","payload","meta"}`, and the String
// message attributes `type` and `correlationId`, counted into the size SQS checks.

import type { EnvelopeOf, MessageType, PayloadByType } from "./generated/contract.js";

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
