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
 * The email row was written, but its envelope could not be put on the queue. The email is
 * not lost: `emailLeft` says where it waits.
 * - `queued`: the claim was given back; the scheduled function sends it at its next tick.
 * - `claimed`: giving the claim back failed too; the tick takes it over once the claim
 *   lease (`CLAIM_LEASE_SECONDS`) runs out.
 */
export class SymphonyDispatchError extends SymphonyAwsError {
  override name = "SymphonyDispatchError";
  readonly emailId: string;
  readonly emailLeft: "queued" | "claimed";

  constructor(emailId: string, emailLeft: "queued" | "claimed", failure: SymphonyAwsError) {
    super(failure.operation, failure.resource, failure.cause, leftText(emailId, emailLeft));
    this.emailId = emailId;
    this.emailLeft = emailLeft;
  }
}

/** How a reason says where an email that did not reach the queue waits. */
export function leftText(emailId: string, left: "queued" | "claimed"): string {
  return left === "queued"
    ? `email ${emailId} was left queued: the scheduled function sends it at its next tick`
    : `email ${emailId} stays claimed: the scheduled function takes it over when the claim lease runs out`;
}

/**
 * A row with this email's id exists with other content. Nothing was written or sent:
 * an email id names one email for good, so a new email needs a new id.
 */
export class SymphonyConflictError extends SymphonyError {
  override name = "SymphonyConflictError";
  readonly emailId: string;
  /** The fields that differ (names only: values may be personal data). */
  readonly differingFields: readonly string[];

  constructor(emailId: string, differingFields: readonly string[]) {
    super(
      `email ${emailId} already exists with a different ${differingFields.join(", ")}; ` +
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
