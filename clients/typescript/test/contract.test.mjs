// The generated types follow docs/schemas/envelope.schema.json; the hand-written checks
// and names agree with the schema and with template.yaml.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { OUTPUT_PATH, generateContract, readSchema } from "../scripts/generate-contract.mjs";
import {
  MAX_HTML_BYTES,
  MAX_SUBJECT_CHARS,
  MESSAGE_TYPES,
  SCHEMA_FIELDS,
  isE164,
  resourceNames,
} from "../dist/index.js";
import { resolve, template } from "./helpers/template.mjs";

test("src/generated/contract.ts is what the schema generates (run `npm run generate` if not)", () => {
  const committed = readFileSync(OUTPUT_PATH, "utf8");
  assert.equal(committed, generateContract(readSchema()));
});

test("the generator is deterministic and follows a change of the schema", () => {
  const schema = readSchema();
  assert.equal(generateContract(schema), generateContract(structuredClone(schema)));
  const changed = structuredClone(schema);
  changed.$defs.EmailMessage.required.push("replyTo");
  changed.$defs.EmailMessage.properties.replyTo = { type: "string", format: "email" };
  const generated = generateContract(changed);
  assert.match(generated, /\n {2}replyTo: string;\n/);
  assert.notEqual(generated, generateContract(schema));
});

test("the built package carries the schema's message types and fields", () => {
  const schema = readSchema();
  assert.deepEqual([...MESSAGE_TYPES], schema.properties.type.enum);
  for (const name of ["EmailMessage", "CampaignProcessingMessage", "SmsDripMessage"]) {
    const definition = schema.$defs[name];
    assert.deepEqual([...SCHEMA_FIELDS[name].required], definition.required, name);
    assert.deepEqual(
      [...SCHEMA_FIELDS[name].required, ...SCHEMA_FIELDS[name].optional].sort(),
      Object.keys(definition.properties).sort(),
      name,
    );
  }
});

test("the hand-written limits are the schema's", () => {
  const { EmailMessage, SmsDripMessage } = readSchema().$defs;
  assert.equal(EmailMessage.properties.subject.maxLength, MAX_SUBJECT_CHARS);
  assert.match(EmailMessage.properties.html.description, new RegExp(MAX_HTML_BYTES.toLocaleString("en-US")));
  const e164 = new RegExp(SmsDripMessage.properties.toPhone.pattern);
  for (const phone of ["+15550100", "+447700900123", "+12", "15550100", "+0155501", "+1 555", "+1555010012345678", "+", "+1a"]) {
    assert.equal(isE164(phone), e164.test(phone), phone);
  }
});

test("the client's table and queue names are template.yaml's", () => {
  const names = resourceNames("prod");
  const resources = template.Resources;
  assert.equal(resolve(resources.FlagsTable.Properties.TableName, "prod"), names.tables.flags);
  assert.equal(resolve(resources.EmailsTable.Properties.TableName, "prod"), names.tables.emails);
  assert.equal(resolve(resources.EmailQueue.Properties.QueueName, "prod"), names.queues.email);
  assert.equal(resolve(resources.CampaignQueue.Properties.QueueName, "prod"), names.queues.campaign);
  assert.equal(resolve(resources.SmsQueue.Properties.QueueName, "prod"), names.queues.sms);
});
