// One stack's tables and queues on a moto server, with what tests do to them.

import {
  DeleteItemCommand,
  DynamoDBClient,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";

import { createSymphonyClient } from "../../dist/index.js";
import { CREDENTIALS, REGION } from "./moto.mjs";
import { createDeployment } from "./template.mjs";

export async function deploy(moto, stack) {
  const urls = await createDeployment(moto.endpoint, stack);
  const aws = { region: REGION, endpoint: moto.endpoint, credentials: CREDENTIALS };
  const dynamodb = new DynamoDBClient(aws);
  const sqs = new SQSClient({ ...aws, useQueueUrlAsEndpoint: false });
  const tables = { flags: `${stack}-flags`, emails: `${stack}-emails` };
  return {
    stack,
    urls,
    tables,
    dynamodb,
    sqs,
    /** A client of this stack; `options` add to or replace the defaults. */
    client(options = {}) {
      return createSymphonyClient({
        stack,
        region: REGION,
        endpoint: moto.endpoint,
        credentials: CREDENTIALS,
        flagCacheTtlMs: 0,
        logger: null,
        ...options,
      });
    },
    /** Sets flag items: `{ SYMPHONY_ENABLED: true, SYMPHONY_EMAIL_QUEUE_ENABLED: [true, 30] }`; `null` deletes. */
    async setFlags(flags) {
      for (const [name, value] of Object.entries(flags)) {
        if (value === null) {
          await dynamodb.send(new DeleteItemCommand({ TableName: tables.flags, Key: { name: { S: name } } }));
          continue;
        }
        const [enabled, percent] = Array.isArray(value) ? value : [value, undefined];
        const item = { name: { S: name }, enabled: { BOOL: enabled } };
        if (percent !== undefined) item.rolloutPercent = { N: String(percent) };
        await dynamodb.send(new PutItemCommand({ TableName: tables.flags, Item: item }));
      }
    },
    /**
     * Puts an email row in `status` (test set-up: as a worker or the tick would have
     * left it; claim attributes removed unless it is claimed).
     */
    async setRowStatus(emailId, status) {
      await dynamodb.send(
        new UpdateItemCommand({
          TableName: tables.emails,
          Key: { emailId: { S: emailId } },
          UpdateExpression:
            status === "claimed" ? "SET #status = :status" : "SET #status = :status REMOVE claimToken, claimedAt, claimedBy",
          ConditionExpression: "attribute_exists(emailId)",
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: { ":status": { S: status } },
        }),
      );
    },
    /** Every email row. */
    async rows() {
      return (await dynamodb.send(new ScanCommand({ TableName: tables.emails, ConsistentRead: true }))).Items ?? [];
    },
    /** Takes every message off the job's queue: `{ body, envelope, attributes, messageId, systemAttributes }`. */
    async drain(job) {
      const messages = [];
      for (;;) {
        const output = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: urls[job],
            MaxNumberOfMessages: 10,
            MessageAttributeNames: ["All"],
            MessageSystemAttributeNames: ["All"],
            WaitTimeSeconds: 0,
          }),
        );
        const received = output.Messages ?? [];
        if (received.length === 0) return messages;
        for (const message of received) {
          messages.push({
            messageId: message.MessageId,
            body: message.Body,
            envelope: JSON.parse(message.Body),
            attributes: Object.fromEntries(
              Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [name, value.StringValue]),
            ),
            systemAttributes: message.Attributes ?? {},
          });
        }
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: urls[job],
            Entries: received.map((message, index) => ({ Id: `d${index}`, ReceiptHandle: message.ReceiptHandle })),
          }),
        );
      }
    },
    close() {
      dynamodb.destroy();
      sqs.destroy();
    },
  };
}

/** A valid email; `overrides` replace fields (`undefined` removes one). */
export function email(emailId, overrides = {}) {
  const message = {
    emailId,
    userId: "user-1",
    mailboxId: "mailbox-1",
    toEmail: "lead@example.com",
    subject: "Welcome",
    html: "<p>Hi</p>",
    fromName: "Ada from Acme",
    fromEmail: "ada@acme.example",
    ...overrides,
  };
  for (const [field, value] of Object.entries(overrides)) if (value === undefined) delete message[field];
  return message;
}

export const ALL_ON = { SYMPHONY_ENABLED: true, SYMPHONY_EMAIL_QUEUE_ENABLED: true };
