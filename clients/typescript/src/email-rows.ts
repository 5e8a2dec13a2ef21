// The emails table, as the Rust side reads it (email_from_item in
// shared/adapters/src/email/dynamo.rs; docs/data-model.md): one item per email, keyed by
// `emailId`, with `status` and `dueAt` (epoch seconds) for the tick's index. A row is only
// ever created here, conditionally: an existing row is never overwritten.

import {
  ConditionalCheckFailedException,
  PutItemCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from "@aws-sdk/client-dynamodb";

import { SymphonyAwsError } from "./errors.js";
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
const MESSAGE_FIELDS: readonly (keyof EmailMessage)[] = [
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

export type CreateOutcome =
  | { created: true }
  /** A row with this id exists; `differingFields` lists the message fields that differ. */
  | { created: false; differingFields: string[] };

/**
 * Creates the row, only if no row has its id. A conflict answers the existing row's
 * differences from `item`. A retry by the SDK whose first try was applied meets its own
 * row: a claimed row carries our claim token, and that counts as created.
 */
export async function createRow(dynamodb: DynamoDBClient, table: string, item: Item): Promise<CreateOutcome> {
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
    return { created: true };
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) {
      throw new SymphonyAwsError("DynamoDB.PutItem", table, error);
    }
    const existing = error.Item ?? {};
    const token = item["claimToken"]?.S;
    if (token !== undefined && existing["claimToken"]?.S === token) return { created: true };
    const differingFields = MESSAGE_FIELDS.filter((field) => existing[field]?.S !== item[field]?.S);
    return { created: false, differingFields };
  }
}

/**
 * Gives a claim back (claimed under our token → queued, as the tick's release does), so
 * the scheduled function takes the email at its next tick. `false` when the row had
 * moved on (a worker took it) and was left as it is.
 */
export async function releaseClaim(
  dynamodb: DynamoDBClient,
  table: string,
  emailId: string,
  claimToken: string,
): Promise<boolean> {
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
    return true;
  } catch (error) {
    // Only the holder of the claim moves it back to queued: a row found queued is our own
    // release, applied by a try whose answer was lost and retried by the SDK.
    if (error instanceof ConditionalCheckFailedException) return error.Item?.["status"]?.S === "queued";
    throw new SymphonyAwsError("DynamoDB.UpdateItem", table, error);
  }
}
