import type { AttributeValue } from "@aws-sdk/client-dynamodb";

/** Every error this package raises. */
export class SymphonyError extends Error {
  override name = "SymphonyError";
}

/** One field that was refused, and why. */
export interface FieldProblem {
  field: string;
  reason: string;
}

/**
 * Input refused before anything was written or sent. `field` names the first field at
 * fault; `problems` lists every one found.
 */
export class SymphonyValidationError extends SymphonyError {
  override name = "SymphonyValidationError";
  readonly field: string;
  readonly problems: readonly FieldProblem[];
  /** Nothing was written or sent. */
  readonly emailLeft = "none" as const;

  constructor(what: string, problems: readonly FieldProblem[]) {
    const first = problems[0] ?? { field: "(input)", reason: "is invalid" };
    super(`invalid ${what}: ${problems.map((p) => `${p.field} ${p.reason}`).join("; ")}`);
    this.field = first.field;
    this.problems = problems;
  }
}

/** The client was configured in a way it cannot work with (a missing region, a bad URL). */
export class SymphonyConfigError extends SymphonyError {
  override name = "SymphonyConfigError";
}

/** An AWS call failed. The SDK's error is kept as `cause`. */
export class SymphonyAwsError extends SymphonyError {
  override name = "SymphonyAwsError";
  /** The AWS operation, e.g. `DynamoDB.PutItem`. */
  readonly operation: string;
  /** The table or queue it was called on. */
  readonly resource: string;
  /** The SDK's error name, e.g. `AccessDeniedException`. */
  readonly code: string;

  constructor(operation: string, resource: string, cause: unknown, context?: string) {
    const code = errorCode(cause);
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(`${operation} on ${resource} failed (${code}: ${detail})${context ? `; ${context}` : ""}`, {
      cause,
    });
    this.operation = operation;
    this.resource = resource;
    this.code = code;
  }
}

/**
 * Where an email that was not dispatched is, as far as the client could learn:
 * - `none`: nothing was written (refused input, another email under the id, or a row
 *   write the service refused): dispatching it again is safe;
 * - `queued`: its row is queued: the scheduled function sends it at its next tick;
 * - `claimed`: its row is claimed: the tick takes it over when the claim lease runs out
 *   (or the worker that holds it sends it);
 * - `sending`, `sent`: a worker has its message (the send that failed had gone through);
 * - `failed`: its row is marked failed: it will not be sent;
 * - `held`: its row's status is `unknown` (handed to the mail server, no verdict): held
 *   for a person;
 * - `unknown`: the client could not learn it (a write whose answer was lost, however
 *   often it was tried): dispatching the same email again is safe, it is never sent twice.
 */
export type EmailLeft = "none" | "queued" | "claimed" | "sending" | "sent" | "failed" | "held" | "unknown";

/** An email row's `status` (docs/data-model.md); a status this version does not know is passed as written. */
export type EmailStatus = "queued" | "claimed" | "sending" | "sent" | "failed" | "unknown";

/** Where a row in `status` leaves its email. */
export function leftByStatus(status: string | undefined): EmailLeft {
  switch (status) {
    case "queued":
    case "claimed":
    case "sending":
    case "sent":
    case "failed":
      return status;
    case "unknown":
      return "held";
    default:
      return "unknown";
  }
}

/**
 * An AWS call of an email's dispatch failed. `emailLeft` says where the email is: when
 * the row was never written (`none`), when its envelope could not be put on the queue
 * (the status its row was found in), or `unknown` when a write's answer was lost.
 */
export class SymphonyDispatchError extends SymphonyAwsError {
  override name = "SymphonyDispatchError";
  readonly emailId: string;
  readonly emailLeft: EmailLeft;

  constructor(emailId: string, emailLeft: EmailLeft, failure: SymphonyAwsError) {
    super(failure.operation, failure.resource, failure.cause, leftText(emailId, emailLeft));
    this.emailId = emailId;
    this.emailLeft = emailLeft;
  }
}

/** How a reason says where an email that was not dispatched is. */
export function leftText(emailId: string, left: EmailLeft): string {
  switch (left) {
    case "none":
      return `nothing was written for email ${emailId}: dispatching it again is safe`;
    case "queued":
      return `email ${emailId} was left queued: the scheduled function sends it at its next tick`;
    case "claimed":
      return `email ${emailId} stays claimed: the scheduled function takes it over when the claim lease runs out`;
    case "sending":
      return `email ${emailId} is being sent: a worker has its message`;
    case "sent":
      return `email ${emailId} was sent: a worker had its message`;
    case "failed":
      return `email ${emailId} is marked failed: it will not be sent`;
    case "held":
      return `email ${emailId} is held (status unknown) for a person to decide`;
    case "unknown":
      return `where email ${emailId} is could not be learned: dispatching it again is safe (it is never sent twice)`;
  }
}

/**
 * A row with this email's id exists with other content. Nothing was written or sent:
 * an email id names one email for good, so a new email needs a new id.
 */
export class SymphonyConflictError extends SymphonyError {
  override name = "SymphonyConflictError";
  readonly emailId: string;
  /**
   * The fields that differ (names only: values may be personal data); empty when the
   * existing row's content was not returned.
   */
  readonly differingFields: readonly string[];
  /** Nothing was written or sent. */
  readonly emailLeft = "none" as const;

  constructor(emailId: string, differingFields: readonly string[], where = "already exists") {
    super(
      (differingFields.length > 0
        ? `email ${emailId} ${where} with a different ${differingFields.join(", ")}; `
        : `email ${emailId} ${where} (its content was not returned); `) +
        "nothing was written or sent (give a new email a new id)",
    );
    this.emailId = emailId;
    this.differingFields = differingFields;
  }
}

/** symphony-api answered with an error status. */
export class SymphonyHttpError extends SymphonyError {
  override name = "SymphonyHttpError";
  readonly status: number;
  /** The answer's own reason (`error`, or the function URL's `Message`), else its text. */
  readonly reason: string;
  readonly body: unknown;

  constructor(url: string, status: number, reason: string, body: unknown) {
    super(`GET ${url} answered ${status}: ${reason}`);
    this.status = status;
    this.reason = reason;
    this.body = body;
  }
}

/** The SDK's name for an error (`ConditionalCheckFailedException`...), or its class name. */
export function errorCode(error: unknown): string {
  if (error && typeof error === "object") {
    const named = error as { name?: unknown; Code?: unknown; code?: unknown };
    for (const candidate of [named.name, named.Code, named.code]) {
      if (typeof candidate === "string" && candidate !== "" && candidate !== "Error") return candidate;
    }
  }
  return "Error";
}

/**
 * Failures that happen before a request leaves: no connection was made, or no
 * credentials could be had. Nothing reached the service.
 */
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);
const NOT_SENT_NAMES = new Set(["CredentialsProviderError", "TokenProviderError"]);

/**
 * Whether a failed AWS call was certainly not applied: the service answered it with a
 * 4xx (it refused it: a validation error, a missing grant or table, a throttle), or it
 * never left. A 5xx, a timeout, a reset connection or an answer that could not be read
 * may have been applied: such a failure is ambiguous.
 */
export function certainlyNotApplied(error: unknown): boolean {
  const cause = error instanceof SymphonyAwsError ? error.cause : error;
  if (!cause || typeof cause !== "object") return false;
  // After the SDK's own retries, an earlier try may have been applied, whatever the last said.
  if (sdkAttempts(cause) > 1) return false;
  const status = (cause as { $metadata?: { httpStatusCode?: unknown } }).$metadata?.httpStatusCode;
  if (typeof status === "number") return status >= 400 && status < 500;
  const { name, code } = cause as { name?: unknown; code?: unknown };
  return (typeof name === "string" && NOT_SENT_NAMES.has(name)) || (typeof code === "string" && NOT_SENT_CODES.has(code));
}

/** How many tries the SDK made of the request that failed with `error` (1 when it does not say). */
export function sdkAttempts(error: unknown): number {
  const attempts = (error as { $metadata?: { attempts?: unknown } } | null)?.$metadata?.attempts;
  return typeof attempts === "number" ? attempts : 1;
}

/** The name of a failed conditional write, whichever copy of the SDK raised it. */
export const CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException";

/**
 * The item a failed conditional write returned (`ReturnValuesOnConditionCheckFailure =
 * ALL_OLD`), or `undefined` when `error` is not such a failure. Checked by name, not
 * `instanceof`: the app may pass a client from another copy of the SDK.
 */
export function conditionFailure(
  error: unknown,
): { item: Record<string, AttributeValue> | undefined } | undefined {
  if (!error || typeof error !== "object" || (error as { name?: unknown }).name !== CONDITIONAL_CHECK_FAILED) {
    return undefined;
  }
  const item = (error as { Item?: unknown }).Item;
  return { item: item && typeof item === "object" ? (item as Record<string, AttributeValue>) : undefined };
}
