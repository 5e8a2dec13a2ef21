// The deployment's tables and queues as template.yaml declares them, made on moto, so a
// key schema or a name that drifts from the client's fails here.

import { readFileSync } from "node:fs";
import { join } from "node:path";

import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { parse } from "yaml";

import { REPO_ROOT } from "./python.mjs";
import { CREDENTIALS, REGION } from "./moto.mjs";

// CloudFormation's short-form intrinsics, read as their long forms.
const INTRINSICS = {
  Ref: "Ref",
  Sub: "Fn::Sub",
  GetAtt: "Fn::GetAtt",
  If: "If",
  Equals: "Fn::Equals",
  Not: "Fn::Not",
  And: "Fn::And",
  Or: "Fn::Or",
  Join: "Fn::Join",
  Select: "Fn::Select",
  Split: "Fn::Split",
  FindInMap: "Fn::FindInMap",
  GetAZs: "Fn::GetAZs",
  ImportValue: "Fn::ImportValue",
  Base64: "Fn::Base64",
  Cidr: "Fn::Cidr",
  Condition: "Condition",
};
const customTags = Object.entries(INTRINSICS).flatMap(([short, long]) => [
  { tag: `!${short}`, resolve: (value) => ({ [long]: value }) },
  { tag: `!${short}`, collection: "seq", resolve: (seq) => ({ [long]: seq.toJSON() }) },
  { tag: `!${short}`, collection: "map", resolve: (map) => ({ [long]: map.toJSON() }) },
]);

export const template = parse(readFileSync(join(REPO_ROOT, "template.yaml"), "utf8"), { customTags });

/** A property's value for `stack`: `!Sub` of the stack name, `!Ref` of a parameter's default. */
export function resolve(value, stack) {
  if (value && typeof value === "object") {
    if ("Fn::Sub" in value && typeof value["Fn::Sub"] === "string") {
      return value["Fn::Sub"].replaceAll("${AWS::StackName}", stack);
    }
    if ("Ref" in value) {
      const parameter = template.Parameters[value.Ref];
      if (!parameter) throw new Error(`!Ref ${value.Ref} is not a parameter`);
      return parameter.Default;
    }
    throw new Error(`cannot resolve ${JSON.stringify(value)}`);
  }
  return value;
}

function resource(logicalId, type) {
  const found = template.Resources[logicalId];
  if (!found || found.Type !== type) throw new Error(`template.yaml has no ${type} ${logicalId}`);
  return found.Properties;
}

/** CreateTable input for the template's table `logicalId`. */
export function tableInput(logicalId, stack) {
  const table = resource(logicalId, "AWS::DynamoDB::Table");
  return {
    TableName: resolve(table.TableName, stack),
    BillingMode: table.BillingMode,
    AttributeDefinitions: table.AttributeDefinitions,
    KeySchema: table.KeySchema,
    ...(table.GlobalSecondaryIndexes ? { GlobalSecondaryIndexes: table.GlobalSecondaryIndexes } : {}),
  };
}

/** CreateQueue input for the template's queue `logicalId` (its redrive left out). */
export function queueInput(logicalId, stack) {
  const queue = resource(logicalId, "AWS::SQS::Queue");
  const attributes = {};
  for (const name of ["MaximumMessageSize", "VisibilityTimeout", "MessageRetentionPeriod"]) {
    if (queue[name] !== undefined) attributes[name] = String(resolve(queue[name], stack));
  }
  return { QueueName: resolve(queue.QueueName, stack), Attributes: attributes };
}

/** The tables and queues the client touches, for `stack`. Answers the queue URLs by job. */
export async function createDeployment(endpoint, stack) {
  const aws = { region: REGION, endpoint, credentials: CREDENTIALS };
  const dynamodb = new DynamoDBClient(aws);
  const sqs = new SQSClient({ ...aws, useQueueUrlAsEndpoint: false });
  try {
    for (const table of ["FlagsTable", "EmailsTable"]) {
      await dynamodb.send(new CreateTableCommand(tableInput(table, stack)));
    }
    const urls = {};
    for (const [job, queue] of [["email", "EmailQueue"], ["campaign", "CampaignQueue"], ["sms", "SmsQueue"]]) {
      urls[job] = (await sqs.send(new CreateQueueCommand(queueInput(queue, stack)))).QueueUrl;
    }
    return urls;
  } finally {
    dynamodb.destroy();
    sqs.destroy();
  }
}
