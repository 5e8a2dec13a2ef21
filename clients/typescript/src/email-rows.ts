// The emails table, as the Rust side reads it (email_from_item in
// shared/adapters/src/email/dynamo.rs; docs/data-model.md): one item per email, keyed by
// `emailId`, with `status` and `dueAt` (epoch seconds) for the tick's index. A row is only
// ever created here, conditionally: an existing row is never overwritten.

import {
  PutItemCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from "@aws-sdk/client-dynamodb";

import {
  SymphonyAwsError,
  certainlyNotApplied,
  conditionFailure,
  leftByStatus,
  sdkAttempts,
  type EmailLeft,
} from "./errors.js";
import { SCHEMA_FIELDS, type EmailMessage } from "./generated/contract.js";

export type Item = Record<string, AttributeValue>;

/** DynamoDB's limit on one item (400 KB). */
export const DYNAMODB_MAX_ITEM_BYTES = 400 * 1024;
/**
 * Room left in a new row for what the lifecycle adds later (`lastError` up to 1 KiB,
 * `writeToken`, times): a row created at the limit could not be marked sent or failed.
 */
export const LIFECYCLE_HEADROOM_BYTES = 2 * 1024;
/** A number's size in an item is at most 21 bytes. */
const NUMBER_BYTES = 21;

/** The message's fields, in schema order. */
export const MESSAGE_FIELDS: readonly (keyof EmailMessage)[] = [
  ...SCHEMA_FIELDS.EmailMessage.required,
  ...SCHEMA_FIELDS.EmailMessage.optional,
];

/** How a new row starts. */
export type RowStart =
  /** Due now, for the scheduled function (the legacy path, or when flags are off). */
  | { status: "queued" }
  /** Claimed for the symphony path, exactly as the tick's claim leaves a row. */
  | { status: "claimed"; claimToken: string };

export function emailItem(message: EmailMessage, start: RowStart, nowSeconds: number): Item {
  const item: Item = {};
  for (const field of MESSAGE_FIELDS) {
    const value = message[field];
    // An absent fromName / fromEmail is left out: the worker then takes the mailbox's.
    if (value !== undefined) item[field] = { S: value };
  }
  item["status"] = { S: start.status };
  item["dueAt"] = { N: String(nowSeconds) };
  if (start.status === "claimed") {
    // The tick's claim: SET status = claimed, claimToken, claimedAt, claimedBy.
    item["claimToken"] = { S: start.claimToken };
    item["claimedAt"] = { N: String(nowSeconds) };
    item["claimedBy"] = { S: "symphony" };
  }
  return item;
}

/** The size DynamoDB counts for `item`, numbers taken at their largest. */
export function itemSize(item: Item): number {
  let bytes = 0;
  for (const [name, value] of Object.entries(item)) {
    bytes += Buffer.byteLength(name, "utf8");
    bytes += value.S !== undefined ? Buffer.byteLength(value.S, "utf8") : NUMBER_BYTES;
  }
  return bytes;
}

/** Tries of one row write whose failures are ambiguous (a lost answer), at most. */
export const WRITE_ATTEMPTS = 3;
const WRITE_RETRY_DELAY_MS = 100;

export type CreateOutcome =
  /** This call's row: created now, or by an earlier try whose answer was lost (its claim token). */
  | { kind: "created" }
  /**
   * A row with this id exists: `existing` is it as the failed condition returned it
   * (`undefined` if it was not returned), `differingFields` the message fields that
   * differ. `afterAmbiguousTry`: an earlier try of this call may have written it.
   */
  | { kind: "exists"; existing: Item | undefined; differingFields: string[]; afterAmbiguousTry: boolean }
  /** The service refused every try: nothing was written. */
  | { kind: "refused"; error: SymphonyAwsError }
  /** A try may have been applied and none said so: the row may or may not exist. */
  | { kind: "ambiguous"; error: SymphonyAwsError };

/**
 * Creates the row, only if no row has its id. A try whose failure is ambiguous (a
 * timeout, a 5xx, a dropped connection) is made again, the same request, at most
 * `attempts` tries in all (each with the SDK's own retries): a try that meets the row an
 * earlier one wrote finds its own claim token, and counts as created. A row written
 * `queued` carries no token: its retry meets it as an existing row (`afterAmbiguousTry`).
 */
export async function createRow(
  dynamodb: DynamoDBClient,
  table: string,
  item: Item,
  attempts = WRITE_ATTEMPTS,
): Promise<CreateOutcome> {
  let ambiguous = false;
  for (let attempt = 1; ; attempt += 1) {
    try {
      await dynamodb.send(
        new PutItemCommand({
          TableName: table,
          Item: item,
          ConditionExpression: "attribute_not_exists(#key)",
          ExpressionAttributeNames: { "#key": "emailId" },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return { kind: "created" };
    } catch (error) {
      const failed = conditionFailure(error);
      if (failed) {
        const existing = failed.item;
        const token = item["claimToken"]?.S;
        if (token !== undefined && existing?.["claimToken"]?.S === token) return { kind: "created" };
        const differingFields =
          existing === undefined ? [] : MESSAGE_FIELDS.filter((field) => existing[field]?.S !== item[field]?.S);
        // The SDK's own retries count as tries: its first may have written the row.
        return { kind: "exists", existing, differingFields, afterAmbiguousTry: ambiguous || sdkAttempts(error) > 1 };
      }
      const failure = new SymphonyAwsError("DynamoDB.PutItem", table, error);
      if (certainlyNotApplied(error)) return ambiguous ? { kind: "ambiguous", error: failure } : { kind: "refused", error: failure };
      ambiguous = true;
      if (attempt >= attempts) return { kind: "ambiguous", error: failure };
      await sleep(WRITE_RETRY_DELAY_MS * attempt);
    }
  }
}

/**
 * Gives a claim back (claimed under our token → queued, as the tick's release does), so
 * the scheduled function takes the email at its next tick. Answers where the email is:
 * `queued` once given back; otherwise the status the failed condition found it in (a
 * worker took it: `sending`, `sent`...). An ambiguous failure is tried again, at most
 * `attempts` tries; if none is known to have been applied, `unknown`. A release the
 * service refused leaves the row as it was: `ifRefused`.
 */
export async function releaseClaim(
  dynamodb: DynamoDBClient,
  table: string,
  emailId: string,
  claimToken: string,
  ifRefused: EmailLeft,
  attempts = WRITE_ATTEMPTS,
): Promise<EmailLeft> {
  let ambiguous = false;
  for (let attempt = 1; ; attempt += 1) {
    try {
      await dynamodb.send(
        new UpdateItemCommand({
          TableName: table,
          Key: { emailId: { S: emailId } },
          UpdateExpression: "SET #status = :queued REMOVE claimToken, claimedAt, claimedBy",
          ConditionExpression: "#status = :claimed AND claimToken = :token",
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: {
            ":queued": { S: "queued" },
            ":claimed": { S: "claimed" },
            ":token": { S: claimToken },
          },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return "queued";
    } catch (error) {
      // The row as the condition found it: queued (our own release, applied by a try
      // whose answer was lost), or moved on by someone else.
      const failed = conditionFailure(error);
      if (failed) return failed.item === undefined ? "unknown" : leftByStatus(failed.item["status"]?.S);
      if (certainlyNotApplied(error)) return ambiguous ? "unknown" : ifRefused;
      ambiguous = true;
      if (attempt >= attempts) return "unknown";
      await sleep(WRITE_RETRY_DELAY_MS * attempt);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
