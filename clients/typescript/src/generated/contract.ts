// Generated from docs/schemas/envelope.schema.json by scripts/generate-contract.mjs.
// Do not edit: change the schema, then run `npm run generate` (a test fails while this
// file differs from what the schema generates).

/** Stable message type name; selects the handler. Never a language type name. */
export type MessageType = "EmailMessage" | "CampaignProcessingMessage" | "SmsDripMessage";

/** Every message type, in the schema's order. */
export const MESSAGE_TYPES = ["EmailMessage","CampaignProcessingMessage","SmsDripMessage"] as const;

/** The payload each message type carries. */
export interface PayloadByType {
  EmailMessage: EmailMessage;
  CampaignProcessingMessage: CampaignProcessingMessage;
  SmsDripMessage: SmsDripMessage;
}

export interface Meta {
  /**
   * Ties together everything done for one unit of work; Symphony uses the unit's id.
   * Schema: minLength 1.
   */
  correlationId: string;
  /** Schema: format "date-time". */
  createdAt: string;
  /**
   * Who dispatched the envelope, e.g. process-email-queue or webapp.
   * Schema: minLength 1.
   */
  source: string;
  /**
   * 1 when dispatched; the worker overwrites it from SQS ApproximateReceiveCount.
   * Schema: minimum 1.
   * @default 1
   */
  attempt?: number;
  /**
   * When the unit was due, set by a scheduled tick; metrics count latency from here.
   * Schema: format "date-time".
   */
  dueAt?: string;
  /**
   * Hold the message until then (SQS DelaySeconds: at most 15 minutes ahead).
   * Schema: format "date-time".
   */
  deliverAt?: string;
  error?: ErrorDetails;
  /** The schema allows further fields here. */
  [field: string]: unknown;
}

/** Set only on a dead-lettered envelope. */
export interface ErrorDetails {
  /** Why it was given up on: the unit's own fault (permanent), held after a send with no verdict (unknown-outcome), not an envelope or not its type (malformed), retried until the receive count ran out (exhausted), never started on its last receive (not-started), or given up on at once for a retryable or infrastructure fault. */
  kind: "permanent" | "unknown-outcome" | "malformed" | "exhausted" | "not-started" | "retryable" | "infrastructure";
  reason: string;
  /** Schema: minimum 1. */
  attempts: number;
  /** Schema: format "date-time". */
  firstFailureAt: string;
  /** Schema: format "date-time". */
  lastFailureAt: string;
  sourceQueue?: string | null;
  /** The schema allows further fields here. */
  [field: string]: unknown;
}

/** One email to send through a mailbox. Field names are the seed's. */
export interface EmailMessage {
  /**
   * Key of the email in the emails table.
   * Schema: minLength 1.
   */
  emailId: string;
  /** Schema: minLength 1. */
  userId: string;
  /**
   * Key of the sending mailbox in the mailboxes table.
   * Schema: minLength 1.
   */
  mailboxId: string;
  /** Schema: format "email". */
  toEmail: string;
  /** Schema: maxLength 998, pattern "^[^\\r\\n]*$". */
  subject: string;
  /** At most 921,600 bytes of UTF-8. */
  html: string;
  /**
   * The sender's display name; the mailbox's fromName when absent.
   * Schema: pattern "^[^\\r\\n]*$".
   */
  fromName?: string;
  /**
   * The sender's address; the mailbox's fromEmail when absent (one of the two must give it).
   * Schema: format "email".
   */
  fromEmail?: string;
}

/** Process one campaign now: turn its due leads' next steps into emails. */
export interface CampaignProcessingMessage {
  /**
   * Key of the campaign in the campaigns table.
   * Schema: minLength 1, pattern "\\S".
   */
  campaignId: string;
  /** Schema: minLength 1, pattern "\\S". */
  userId: string;
  action: "process";
}

/** Send one step of an SMS drip sequence to one enrollment. */
export interface SmsDripMessage {
  /**
   * Key of the enrollment in the enrollments table.
   * Schema: minLength 1, pattern "\\S".
   */
  enrollmentId: string;
  /** Schema: minLength 1, pattern "\\S". */
  sequenceId: string;
  /** Schema: minLength 1, pattern "\\S". */
  userId: string;
  /**
   * E.164: + then 2 to 15 digits, no leading zero.
   * Schema: pattern "^\\+[1-9][0-9]{1,14}$".
   */
  toPhone: string;
  /**
   * Index of the step to send.
   * Schema: minimum 0.
   */
  step: number;
}

/** The body of every message on a Symphony queue. A web app that dispatches messages itself must produce exactly this. */
export interface EnvelopeOf<T extends MessageType> {
  /**
   * Unique id of this envelope (a UUID is recommended).
   * Schema: minLength 1.
   */
  id: string;
  /** Stable message type name; selects the handler. Never a language type name. */
  type: T;
  /** The message, in camelCase; its schema depends on type. */
  payload: PayloadByType[T];
  meta: Meta;
}

/** An envelope of any message type, discriminated by `type`. */
export type Envelope = { [T in MessageType]: EnvelopeOf<T> }[MessageType];

/** The fields of each object of the schema, in its order. */
export const SCHEMA_FIELDS = {
  "Meta": {
    "required": [
      "correlationId",
      "createdAt",
      "source"
    ],
    "optional": [
      "attempt",
      "dueAt",
      "deliverAt",
      "error"
    ],
    "closed": false
  },
  "ErrorDetails": {
    "required": [
      "kind",
      "reason",
      "attempts",
      "firstFailureAt",
      "lastFailureAt"
    ],
    "optional": [
      "sourceQueue"
    ],
    "closed": false
  },
  "EmailMessage": {
    "required": [
      "emailId",
      "userId",
      "mailboxId",
      "toEmail",
      "subject",
      "html"
    ],
    "optional": [
      "fromName",
      "fromEmail"
    ],
    "closed": true
  },
  "CampaignProcessingMessage": {
    "required": [
      "campaignId",
      "userId",
      "action"
    ],
    "optional": [],
    "closed": true
  },
  "SmsDripMessage": {
    "required": [
      "enrollmentId",
      "sequenceId",
      "userId",
      "toPhone",
      "step"
    ],
    "optional": [],
    "closed": true
  }
} as const;
