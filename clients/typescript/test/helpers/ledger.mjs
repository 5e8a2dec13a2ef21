// MIRROR, NOT THE RUST CODE: the Rust side's reads and moves of an email row, their
// expressions copied by hand from shared/aws/src/ledger.rs and shared/aws/src/table.rs.
// They check that a row the client wrote has the attributes those expressions read (a
// claimed row is abandoned once its lease runs out; begin_send moves it); a change on the
// Rust side is NOT caught here, only by the Rust tests. `getRow` is a plain read.

import {
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";

export async function getRow(dynamodb, table, emailId) {
  const output = await dynamodb.send(
    new GetItemCommand({ TableName: table, Key: { emailId: { S: emailId } }, ConsistentRead: true }),
  );
  return output.Item;
}

/** MIRROR of `fetch_due`: queued and due, through byStatusDueAt. Answers the ids. */
export async function fetchDue(dynamodb, table, now) {
  const output = await dynamodb.send(
    new QueryCommand({
      TableName: table,
      IndexName: "byStatusDueAt",
      KeyConditionExpression: "#status = :ready AND dueAt <= :now",
      ExpressionAttributeNames: { "#status": "status" },
      ExpressionAttributeValues: { ":ready": { S: "queued" }, ":now": { N: String(now) } },
    }),
  );
  return (output.Items ?? []).map((item) => item.emailId.S);
}

/** MIRROR of `abandoned_claims`: claimed since before `cutoff` (now less the lease). Answers the ids. */
export async function fetchAbandoned(dynamodb, table, cutoff) {
  const output = await dynamodb.send(
    new QueryCommand({
      TableName: table,
      IndexName: "byStatusDueAt",
      KeyConditionExpression: "#status = :claimed",
      FilterExpression: "claimedAt <= :cutoff",
      ExpressionAttributeNames: { "#status": "status" },
      ExpressionAttributeValues: { ":claimed": { S: "claimed" }, ":cutoff": { N: String(cutoff) } },
    }),
  );
  return (output.Items ?? []).map((item) => item.emailId.S);
}

async function conditional(dynamodb, input) {
  try {
    await dynamodb.send(new UpdateItemCommand(input));
    return true;
  } catch (error) {
    if (error.name === "ConditionalCheckFailedException") return false;
    throw error;
  }
}

/** MIRROR of `take_claim` of a due row (the tick's claim). True when this claim won. */
export function tickClaim(dynamodb, table, emailId, route, now) {
  return conditional(dynamodb, {
    TableName: table,
    Key: { emailId: { S: emailId } },
    UpdateExpression: "SET #status = :claimed, claimToken = :token, claimedAt = :now, claimedBy = :route",
    ConditionExpression: "#status = :ready",
    ExpressionAttributeNames: { "#status": "status" },
    ExpressionAttributeValues: {
      ":ready": { S: "queued" },
      ":claimed": { S: "claimed" },
      ":token": { S: `tick-${Math.random()}` },
      ":now": { N: String(now) },
      ":route": { S: route },
    },
  });
}

/** MIRROR of `begin_send`: claimed → sending, the one delivery that may talk to the mail server. */
export function beginSend(dynamodb, table, emailId, now) {
  return conditional(dynamodb, {
    TableName: table,
    Key: { emailId: { S: emailId } },
    UpdateExpression: "SET #status = :sending, sendingSince = :now",
    ConditionExpression: "#status = :claimed",
    ExpressionAttributeNames: { "#status": "status" },
    ExpressionAttributeValues: { ":claimed": { S: "claimed" }, ":sending": { S: "sending" }, ":now": { N: String(now) } },
  });
}
